// Test support: containerd through ctr; see ctr_cli.h.
#include "tests/support/ctr_cli.h"

#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/engine/engine_detail.h"
#include "common/image/manifest.h"

namespace deltasync::testing {

namespace {

std::string ctr_cli() {
  const char* value = std::getenv("DELTASYNC_CTR_CLI");
  return value != nullptr && *value != '\0' ? std::string(value) : std::string("ctr");
}

CommandResult failed(const std::string& message) {
  CommandResult r;
  r.exit_code = 2;
  r.error_output = message;
  return r;
}

struct Row {
  std::string name, digest;
};

std::vector<Row> image_rows(const std::string& engine) {
  std::vector<Row> rows;
  CommandResult ls = run_ctr(engine, {"images", "ls"});
  std::istringstream in(ls.output);
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {
      header = false;
      continue;
    }
    std::istringstream fields(line);
    std::string name, type, digest;
    if (fields >> name >> type >> digest) rows.push_back({name, digest});
  }
  return rows;
}

std::string content(const std::string& engine, const std::string& digest) {
  CommandResult got = run_ctr(engine, {"content", "get", digest});
  if (!got.ok() || Digest::of(got.output).str() != digest) return "";
  return got.output;
}

// Target digest -> config digest and diff_ids (this host's platform).
bool read_image(const std::string& engine, const std::string& target, CtrImage& image) {
  auto doc = nlohmann::json::parse(content(engine, target), nullptr, false);
  if (doc.is_discarded()) return false;
  if (doc.contains("manifests")) {
    std::string chosen;
    for (const auto& m : doc["manifests"])
      if (m.contains("platform") && m["platform"].value("os", "") == "linux" &&
          m["platform"].value("architecture", "") == host_architecture())
        chosen = m.value("digest", "");
    doc = nlohmann::json::parse(content(engine, chosen), nullptr, false);
    if (doc.is_discarded()) return false;
  }
  if (!doc.contains("config")) return false;
  image.config = doc["config"].value("digest", "");
  auto config = nlohmann::json::parse(content(engine, image.config), nullptr, false);
  if (config.is_discarded()) return false;
  image.diff_ids.clear();
  for (const auto& d : config["rootfs"]["diff_ids"]) image.diff_ids.push_back(d.get<std::string>());
  image.target = target;
  return true;
}

}  // namespace

bool is_containerd_engine(const std::string& engine) {
  return engine.starts_with(engine_detail::kContainerdScheme);
}

CommandResult run_ctr(const std::string& engine, const std::vector<std::string>& args) {
  auto parsed = engine_detail::parse_containerd_address(engine);
  if (!parsed) return failed(parsed.error().message());
  std::vector<std::string> argv{ctr_cli(), "--address", parsed->socket, "--namespace",
                                parsed->name_space};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

CtrImage ctr_image(const std::string& engine, const std::string& ref) {
  CtrImage image;
  const auto rows = image_rows(engine);
  const bool by_digest = ref.starts_with("sha256:");
  const std::string qualified = engine_detail::qualified_name(ref);
  for (const auto& row : rows) {
    if (by_digest ? row.digest == ref : row.name == qualified) {
      if (!read_image(engine, row.digest, image)) return {};
      break;
    }
  }
  if (image.target.empty() && by_digest) {
    for (const auto& row : rows) {
      CtrImage candidate;
      if (read_image(engine, row.digest, candidate) && candidate.config == ref) {
        image = candidate;
        break;
      }
    }
  }
  if (image.target.empty()) return {};
  for (const auto& row : rows)
    if (row.digest == image.target) image.names.push_back(row.name);
  return image;
}

std::string ctr_unpack_problem(const std::string& engine, const std::string& ref) {
  auto parsed = engine_detail::parse_containerd_address(engine);
  if (!parsed) return parsed.error().message();
  CtrImage image = ctr_image(engine, ref);
  if (image.target.empty()) return "no image " + ref;
  std::string chain;
  for (const auto& d : image.diff_ids)
    chain = chain.empty() ? d : Digest::of(chain + " " + d).str();
  CommandResult info =
      run_ctr(engine, {"snapshots", "--snapshotter", parsed->snapshotter, "info", chain});
  if (!info.ok()) return "no snapshot " + chain + ": " + info.error_output;
  auto json = nlohmann::json::parse(info.output, nullptr, false);
  if (json.is_discarded() || json.value("Kind", "") != "Committed")
    return "snapshot " + chain + " is not committed: " + info.output;
  return "";
}

CommandResult run_docker_on_containerd(const std::string& engine,
                                       const std::vector<std::string>& args) {
  auto parsed = engine_detail::parse_containerd_address(engine);
  if (!parsed) return failed(parsed.error().message());
  auto is = [&](std::initializer_list<const char*> prefix) {
    if (args.size() < prefix.size()) return false;
    size_t i = 0;
    for (const char* p : prefix)
      if (args[i++] != p) return false;
    return true;
  };
  if (is({"load", "-i"}) && args.size() == 3)
    return run_ctr(engine, {"images", "import", "--snapshotter", parsed->snapshotter, args[2]});
  if (is({"save", "-o"}) && args.size() == 4)
    return run_ctr(engine, {"images", "export", args[2], engine_detail::qualified_name(args[3])});
  if (is({"info"})) {
    CommandResult r = run_ctr(engine, {"version"});
    if (r.ok()) r.output = "[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n";
    return r;
  }
  if (is({"images"})) {
    CommandResult r;
    r.exit_code = 0;
    std::vector<std::string> seen;
    for (const auto& row : image_rows(engine)) {
      if (std::find(seen.begin(), seen.end(), row.digest) != seen.end()) continue;
      seen.push_back(row.digest);
      r.output += row.digest + "\n";
    }
    return r;
  }
  if (is({"image", "inspect"})) {
    CtrImage image = ctr_image(engine, args.back());
    if (image.target.empty()) return failed("Error: No such image: " + args.back());
    CommandResult r;
    r.exit_code = 0;
    if (args.size() == 5 && args[2] == "--format" && args[3] == "{{.Id}}") {
      r.output = image.target + "\n";
      return r;
    }
    if (args.size() == 5 && args[2] == "--format" && args[3] == "{{json .RootFS.Layers}}") {
      r.output = nlohmann::json(image.diff_ids).dump() + "\n";  // as docker's template prints it
      return r;
    }
    if (args.size() != 3) return failed("test support: docker image inspect with these options");
    nlohmann::json tags = nlohmann::json::array();
    for (const auto& n : image.names)
      if (!n.starts_with("sha256:")) tags.push_back(familiar_reference(n));
    nlohmann::json doc = {{"Id", image.target},
                          {"RepoTags", tags},
                          {"RootFS", {{"Type", "layers"}, {"Layers", image.diff_ids}}}};
    r.output = nlohmann::json::array({doc}).dump();
    return r;
  }
  if (is({"rmi"})) {
    const std::string& ref = args.back();
    std::vector<std::string> names;
    if (ref.starts_with("sha256:")) {
      names = ctr_image(engine, ref).names;
    } else {
      names.push_back(engine_detail::qualified_name(ref));
    }
    if (names.empty()) return failed("Error: No such image: " + ref);
    std::vector<std::string> argv{"images", "rm"};
    argv.insert(argv.end(), names.begin(), names.end());
    CommandResult r = run_ctr(engine, argv);
    if (!r.ok() && r.error_output.find("not found") != std::string::npos)
      r.error_output = "Error: No such image: " + ref;
    return r;
  }
  std::string text;
  for (const auto& a : args) text += " " + a;
  return failed("test support: `docker" + text + "` has no ctr equivalent here (ctr_cli.h)");
}

}  // namespace deltasync::testing
