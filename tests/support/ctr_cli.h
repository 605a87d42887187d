// Test support: a containerd engine (containerd:// address) driven through
// containerd's own CLI, ctr, so that what the tests check about a
// containerd site is read independently of deltasync's client. run_docker()
// routes the docker commands the tests use to these when the engine is a
// containerd address:
//   load -i FILE                 ctr images import --snapshotter SN FILE
//   save -o FILE REF             ctr images export FILE REF
//   images [-a] -q --no-trunc    target digests of `ctr images ls`
//   image inspect [--format {{.Id}}] REF
//                                from `ctr images ls` and `ctr content get`:
//                                Id (target digest), RootFS.Layers, RepoTags
//   rmi [-f] REF                 ctr images rm (every name, for a digest)
//   info --format ...            says the store is containerd's
// Anything else fails with a message naming the command. The CLI is
// $DELTASYNC_CTR_CLI, else `ctr` on PATH.
//
// Thread safety: as test_engines.h.
#pragma once

#include <string>
#include <vector>

#include "tests/support/test_engines.h"

namespace deltasync::testing {

bool is_containerd_engine(const std::string& engine);
CommandResult run_ctr(const std::string& engine, const std::vector<std::string>& args);
// The docker command `args` carried out with ctr (see above).
CommandResult run_docker_on_containerd(const std::string& engine,
                                       const std::vector<std::string>& args);

struct CtrImage {
  std::string target;  // what the image record names
  std::string config;  // the config digest
  std::vector<std::string> diff_ids;
  std::vector<std::string> names;
};
// The image `ref` names (a reference, a target digest or a config digest);
// target empty when there is none.
CtrImage ctr_image(const std::string& engine, const std::string& ref);

// Whether `ref` is unpacked as the kubelet needs it: the snapshot named by
// its top layer's chain ID exists in the address's snapshotter (`ctr
// snapshots info`), committed; "" if so, else what is missing.
std::string ctr_unpack_problem(const std::string& engine, const std::string& ref);

}  // namespace deltasync::testing
