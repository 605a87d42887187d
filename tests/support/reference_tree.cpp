#include "tests/support/reference_tree.h"

#include <unistd.h>

#include <set>

#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"

namespace deltasync::testing {

namespace {

const char* kWalker = R"PY(
import hashlib, json, os, stat, sys
root = sys.argv[1]
out, inodes = {}, {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        full = os.path.join(dirpath, name)
        rel = os.path.relpath(full, root)
        st = os.lstat(full)
        e = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
             "mtime_ns": st.st_mtime_ns}
        if stat.S_ISLNK(st.st_mode):
            e["type"], e["link"] = "l", os.readlink(full)
        elif stat.S_ISDIR(st.st_mode):
            e["type"] = "d"
        elif stat.S_ISREG(st.st_mode):
            e["type"], e["size"] = "f", st.st_size
            with open(full, "rb") as f:
                e["sha256"] = hashlib.sha256(f.read()).hexdigest()
            if st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            e["type"] = "c" if stat.S_ISCHR(st.st_mode) else "b"
            e["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
        elif stat.S_ISFIFO(st.st_mode):
            e["type"] = "p"
        else:
            e["type"] = "s"
        try:
            names = os.listxattr(full, follow_symlinks=False)
        except OSError:
            names = []
        e["xattrs"] = {n: os.getxattr(full, n, follow_symlinks=False).hex() for n in sorted(names)}
        out[rel] = e
for paths in inodes.values():
    for p in paths:
        out[p]["links"] = sorted(q for q in paths if q != p)
json.dump(out, sys.stdout, sort_keys=True)
)PY";

}  // namespace

Result<ReferenceTree> reference_tree(const std::string& engine, const std::string& image,
                                     const std::filesystem::path& work, const std::string& name) {
  std::string container = "ds-ref-" + name + "-" + std::to_string(::getpid());
  run_docker(engine, {"rm", "-f", container});
  auto created = run_docker(engine, {"create", "--name", container, image, "/bin/sh"});
  if (!created.ok()) {
    return make_error(ErrorCode::kEngine, "docker create " + image + ": " + created.error_output);
  }
  std::filesystem::path tar = work / (name + ".tar");
  auto exported = run_docker(engine, {"export", "-o", tar.string(), container});
  run_docker(engine, {"rm", "-f", container});
  if (!exported.ok()) {
    return make_error(ErrorCode::kEngine, "docker export " + image + ": " + exported.error_output);
  }
  ReferenceTree tree;
  tree.root = work / name;
  std::filesystem::create_directories(tree.root);
  auto untar = run_command({"tar", "-x", "--numeric-owner", "-p", "--xattrs", "--xattrs-include=*",
                            "-f", tar.string(), "-C", tree.root.string()});
  std::filesystem::remove(tar);
  if (!untar.ok())
    return make_error(ErrorCode::kIo, "tar -x of " + image + ": " + untar.error_output);
  std::filesystem::path walker = work / "reference-walker.py";
  write_file(walker, kWalker);
  auto walked = run_command({"python3", walker.string(), tree.root.string()});
  if (!walked.ok()) return make_error(ErrorCode::kIo, "walker: " + walked.error_output);
  tree.entries = nlohmann::json::parse(walked.output, nullptr, false);
  if (!tree.entries.is_object()) return make_error(ErrorCode::kIo, "walker: output is not JSON");
  return tree;
}

std::string content_key(const nlohmann::json& entry) {
  std::string type = entry.value("type", "o");
  if (type == "d") return "d";
  if (type == "f") return "f:" + entry.value("sha256", "");
  if (type == "l") return "l:" + entry.value("link", "");
  return "o";
}

bool is_container_init_path(const std::string& path) {
  static const std::set<std::string> kPaths = {
      ".dockerenv",      "etc",         "etc/hosts", "etc/hostname",
      "etc/resolv.conf", "etc/mtab",    "dev",       "dev/pts",
      "dev/shm",         "dev/console", "proc",      "sys"};
  return kPaths.count(path) > 0;
}

}  // namespace deltasync::testing
