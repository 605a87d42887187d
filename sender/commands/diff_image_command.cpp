// Steps: open both images (exported concurrently); index their layers (each
// distinct layer read once; TARGET's own layers are copied into a scratch
// workspace in the same pass, as their payloads are what the new layer is
// made of); plan the extra layer (sender/diffimage/layer_plan.cpp) and write
// it to the workspace; check that BASE's layers + it present TARGET's file
// system exactly; write the config; stream a docker-archive into the engine
// (BASE's layers skipped when the engine holds them); check the loaded
// image's ID and layers; tag it.
#include "sender/commands/diff_image_command.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <future>
#include <set>

#include "common/codec/compression.h"
#include "common/engine/engine_client.h"
#include "common/engine/load_archive.h"
#include "common/image/manifest.h"
#include "common/index/image_indexer.h"
#include "common/io/file.h"
#include "common/layerstream/layer_workspace.h"
#include "common/load/image_loader.h"
#include "sender/commands/open_images.h"
#include "sender/diffimage/diff_image_config.h"
#include "sender/diffimage/layer_writer.h"
#include "sender/diffimage/tree_check.h"

namespace deltasync {

namespace {

Result<std::vector<std::string>> normalize_tags(const std::vector<std::string>& tags) {
  if (tags.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "diff-image: name the new image with -t REPO:TAG");
  }
  std::vector<std::string> out;
  for (const auto& tag : tags) {
    if (tag.empty() || tag.find('@') != std::string::npos ||
        tag.find_first_of(" \t\n") != std::string::npos || tag.starts_with("sha256:")) {
      return make_error(ErrorCode::kInvalidArgument,
                        "diff-image: '" + tag + "' is not a REPO[:TAG] name");
    }
    out.push_back(familiar_reference(tag));
  }
  return out;
}

Result<uint64_t> gzip_size(int fd, uint64_t size, const std::string& what) {
  CountingSink compressed;
  auto gzip = make_gzip_sink(compressed, 6);
  FileSource source(fd, 0, size, what);
  DS_RETURN_IF_ERROR(copy_exact(source, *gzip, size, what));
  DS_RETURN_IF_ERROR(gzip->finish());
  return compressed.count();
}

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%",
                100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

}  // namespace

Result<DiffImageResult> make_diff_image(const DiffImageCommandOptions& options) {
  auto started = std::chrono::steady_clock::now();
  DiffImageResult result;
  DS_ASSIGN_OR_RETURN(result.tags, normalize_tags(options.tags));

  // Both images at once (each opener has its own engine client).
  ImageOpener opener(options.engine);
  ImageOpener base_opener(options.engine);
  auto base_future =
      std::async(std::launch::async, [&] { return base_opener.open(options.base_image); });
  auto target_result = opener.open(options.target_image);
  DS_ASSIGN_OR_RETURN(auto base, base_future.get());
  DS_ASSIGN_OR_RETURN(auto target, std::move(target_result));
  const ImageInfo& base_info = base->info();
  const ImageInfo& target_info = target->info();
  result.base_id = base_info.image_id.str();
  result.target_id = target_info.image_id.str();
  result.base_layers = base_info.layers.size();
  result.target_layers = target_info.layers.size();

  // Indexes. TARGET's layers that BASE lacks go to the workspace as they
  // are indexed: the new files are there.
  DS_ASSIGN_OR_RETURN(auto workspace,
                      LayerWorkspace::create(default_temp_parent(), "deltasend-diff-image-"));
  LayerIndexCache cache;
  DS_ASSIGN_OR_RETURN(auto base_layers, cache.all(*base));
  std::set<Digest> base_diff_ids;
  for (const auto* layer : base_layers) base_diff_ids.insert(layer->diff_id);
  std::vector<const LayerIndex*> target_layers;
  std::set<Digest> counted;
  for (size_t i = 0; i < target_info.layers.size(); ++i) {
    const Digest& diff_id = target_info.layers[i].diff_id;
    const LayerIndex* index = nullptr;
    if (base_diff_ids.count(diff_id)) {
      DS_ASSIGN_OR_RETURN(index, cache.get(*target, i));
    } else {
      DS_ASSIGN_OR_RETURN(index, workspace->add_from_image(*target, i));
      if (counted.insert(diff_id).second) {
        ++result.target_missing_layers;
        result.target_missing_bytes += index->tar_size;
      }
    }
    target_layers.push_back(index);
  }
  ImageTree base_tree = build_image_tree(base_layers);
  ImageTree target_tree = build_image_tree(target_layers);

  // The plan; payloads from TARGET layers shared with BASE need copying too.
  DiffLayerPlan plan = plan_diff_layer(base_tree, base_layers, target_tree, target_layers);
  std::vector<int> layer_fds(target_layers.size(), -1);
  for (uint32_t i : plan.payload_layers()) {
    if (!workspace->has(target_layers[i]->diff_id)) {
      auto added = workspace->add_from_image(*target, i);
      if (!added) return std::unexpected(added.error());
    }
    layer_fds[i] = workspace->fd(target_layers[i]->diff_id);
  }
  spdlog::info("diff layer: {} entries, {} payload bytes", plan.entries.size(),
               plan.counts.payload_bytes);

  // The layer, in the workspace.
  std::filesystem::path layer_path = workspace->dir() / "diff-layer.tar";
  UniqueFd layer_file(::open(layer_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!layer_file.valid())
    return std::unexpected(errno_error(errno, "create " + layer_path.string()));
  int layer_fd = layer_file.get();
  WrittenLayer written;
  {
    int write_fd = ::dup(layer_fd);
    if (write_fd < 0) return std::unexpected(errno_error(errno, "dup"));
    FdSink sink(UniqueFd(write_fd), layer_path.string());
    BufferedSink buffered(sink, 1 << 20);
    DS_ASSIGN_OR_RETURN(written, write_diff_layer(plan, target_layers, layer_fds, buffered));
    DS_RETURN_IF_ERROR(buffered.flush());
  }

  // The check: BASE's layers + the new one present TARGET's file system.
  std::vector<const LayerIndex*> new_layers = base_layers;
  LayerIndex new_index;
  {
    FileSource source(layer_fd, 0, written.size, "the diff layer");
    DS_ASSIGN_OR_RETURN(new_index, build_layer_index(source, written.diff_id, "the diff layer"));
  }
  new_layers.push_back(&new_index);
  ImageTree new_tree = build_image_tree(new_layers);
  TreeCheck check = compare_trees(target_tree, target_layers, new_tree, new_layers);
  if (check.difference_count > 0) {
    std::string list;
    for (const auto& d : check.differences) list += "\n  " + d;
    return make_error(ErrorCode::kInternal, "diff-image: the image would not have " +
                                                options.target_image + "'s file system (" +
                                                std::to_string(check.difference_count) +
                                                " differences; nothing was loaded):" + list);
  }
  result.paths_checked = check.paths;

  // Sizes for the summary.
  result.layer_diff_id = written.diff_id;
  result.layer_tar_bytes = written.size;
  result.layer_entries = plan.entries.size();
  result.layer_counts = plan.counts;
  result.files = plan.diff.totals;
  DS_ASSIGN_OR_RETURN(result.layer_gzip_bytes, gzip_size(layer_fd, written.size, "the diff layer"));
  DS_ASSIGN_OR_RETURN(result.changed_files, measure_changed_files(plan, target_tree, layer_fds));

  // The config.
  DiffImageConfigInput config_input;
  config_input.base_config = base_info.config_bytes;
  config_input.target_config = target_info.config_bytes;
  config_input.new_layer = written.diff_id;
  config_input.created_by =
      "deltasend diff-image: changes from " + options.base_image + " to " + options.target_image;
  DS_ASSIGN_OR_RETURN(std::string config, make_diff_image_config(config_input));
  Digest image_id = Digest::of(config);
  result.image_id = image_id.str();

  // Load: BASE's layers the engine holds are listed, not sent.
  DS_ASSIGN_OR_RETURN(EngineClient * engine, opener.engine());
  result.engine = engine->address();
  std::vector<std::string> expected_chain;
  for (const auto& layer : base_info.layers) expected_chain.push_back(layer.diff_id.str());
  expected_chain.push_back(written.diff_id.str());
  size_t engine_has = 0;
  if (auto held = engine->inspect_image(result.base_id)) {
    while (engine_has < base_info.layers.size() && engine_has < held->diff_ids.size() &&
           held->diff_ids[engine_has] == expected_chain[engine_has]) {
      ++engine_has;
    }
  } else if (held.error().code() != ErrorCode::kNotFound) {
    return std::unexpected(held.error());
  }
  // The loader asks for the layers it needs: on the classic store only those
  // past `engine_has`, on the containerd store all of them.
  std::vector<Digest> chain;
  for (const auto& layer : base_info.layers) chain.push_back(layer.diff_id);
  chain.push_back(written.diff_id);
  size_t base_copied = 0;
  auto layer_ref = [&](const Digest& d) -> Result<LayerFileRef> {
    if (d == written.diff_id) return LayerFileRef{layer_fd, written.size};
    for (size_t i = 0; i < base_info.layers.size(); ++i) {
      if (base_info.layers[i].diff_id != d) continue;
      if (!workspace->has(d)) {
        DS_RETURN_IF_ERROR(workspace->add_from_image(*base, i));
        ++base_copied;
      }
      return LayerFileRef{workspace->fd(d), workspace->size(d)};
    }
    return make_error(ErrorCode::kInternal, "diff-image: no layer " + d.str());
  };
  DS_ASSIGN_OR_RETURN(LoadedImage loaded,
                      with_context(load_image_into_engine(*engine, config, chain, engine_has,
                                                          layer_ref, result.tags),
                                   "diff-image: loading the image"));
  result.base_layers_loaded = base_copied;
  result.engine_image_id = loaded.engine_id;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

nlohmann::json diff_image_result_to_json(const DiffImageResult& r) {
  const auto& c = r.layer_counts;
  return {
      {"image", {{"id", r.image_id}, {"engine_image_id", r.engine_image_id}, {"tags", r.tags}}},
      {"engine", r.engine},
      {"base",
       {{"id", r.base_id}, {"layers", r.base_layers}, {"layers_loaded", r.base_layers_loaded}}},
      {"target", {{"id", r.target_id}, {"layers", r.target_layers}}},
      {"files",
       {{"added", r.files.added},
        {"changed", r.files.changed},
        {"removed", r.files.removed},
        {"metadata_only", r.files.metadata_only},
        {"unchanged", r.files.unchanged}}},
      {"layer",
       {{"diff_id", r.layer_diff_id.str()},
        {"tar_bytes", r.layer_tar_bytes},
        {"gzip_bytes", r.layer_gzip_bytes},
        {"entries", r.layer_entries},
        {"added", c.added},
        {"changed", c.changed},
        {"metadata_only", c.metadata},
        {"parent_dirs", c.parents},
        {"link_members", c.link_members},
        {"whiteouts", c.whiteouts},
        {"opaque_dirs", c.opaque_dirs},
        {"payload_bytes", c.payload_bytes}}},
      {"changed_files",
       {{"files", r.changed_files.files},
        {"tar_bytes", r.changed_files.tar_bytes},
        {"gzip_bytes", r.changed_files.gzip_bytes}}},
      {"target_missing_layers",
       {{"layers", r.target_missing_layers}, {"tar_bytes", r.target_missing_bytes}}},
      {"check", {{"equal", true}, {"paths", r.paths_checked}}},
      {"seconds", r.seconds},
  };
}

std::string format_diff_image_result(const DiffImageResult& r,
                                     const DiffImageCommandOptions& options) {
  const auto& c = r.layer_counts;
  auto n = [](uint64_t v) { return std::to_string(v); };
  std::string out;
  out += "loaded " + (r.tags.empty() ? std::string() : r.tags.front() + " ") + "(" + r.image_id +
         ") into " + r.engine + ": " + n(r.base_layers) + " layers of " + options.base_image +
         " + 1 layer of changes\n";
  if (!r.engine_image_id.empty() && r.engine_image_id != r.image_id)
    out += "  the engine's Id of it: " + r.engine_image_id + " (the manifest written for it)\n";
  out += "  files: " + n(r.files.added) + " added, " + n(r.files.changed) + " changed, " +
         n(r.files.removed) + " removed, " + n(r.files.metadata_only) + " metadata only (" +
         options.base_image + " -> " + options.target_image + ")\n";
  out += "  extra layer: " + n(r.layer_tar_bytes) + " bytes (" + human_bytes(r.layer_tar_bytes) +
         ") tar, " + n(r.layer_gzip_bytes) + " bytes gzip; " + n(r.layer_entries) +
         " entries: " + n(c.added + c.changed + c.metadata) + " changed paths, " + n(c.parents) +
         " parent directories, " + n(c.link_members) + " hard-link members, " + n(c.whiteouts) +
         " whiteouts, " + n(c.opaque_dirs) + " opaque directories\n";
  out += "  changed-files tar+gzip: " + n(r.changed_files.tar_bytes) + " bytes tar, " +
         n(r.changed_files.gzip_bytes) +
         " bytes gzip (extra layer: " + percent(r.layer_tar_bytes, r.changed_files.tar_bytes) +
         " tar, " + percent(r.layer_gzip_bytes, r.changed_files.gzip_bytes) + " gzip)\n";
  out += "  " + options.target_image + "'s own missing layers: " + n(r.target_missing_layers) +
         " layers, " + n(r.target_missing_bytes) + " bytes (" +
         human_bytes(r.target_missing_bytes) +
         ") tar (extra layer: " + percent(r.layer_tar_bytes, r.target_missing_bytes) + ")\n";
  out += "  check: its file system equals " + options.target_image + "'s (" + n(r.paths_checked) +
         " paths: kind, content, link target, mode, owner, mtime, xattrs, hard links)\n";
  return out;
}

Status run_diff_image_command(const DiffImageCommandOptions& options) {
  DS_ASSIGN_OR_RETURN(DiffImageResult result, make_diff_image(options));
  if (options.json) {
    std::string text = diff_image_result_to_json(result).dump(2);
    std::printf("%s\n", text.c_str());
  } else if (!options.quiet) {
    std::string text = format_diff_image_result(result, options);
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  return ok_status();
}

}  // namespace deltasync
