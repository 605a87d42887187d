// ds-bench-rounds: what remote mode's signatures and deltas cost for a set of
// changed files, in one round (choose_signature_params) and in rounds
// (common/delta/signature_rounds.h), without a network or an engine.
//
//   ds-bench-rounds DIR     (DIR holds N.old / N.new pairs, e.g. from
//                            bench/baselines/extract-changed-files.py)
//
// Signatures are counted zstd-3 compressed, as the site sends them; deltas
// are concatenated and zstd-12 compressed, as the default layer stream
// compresses its records. Prints a table.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "common/codec/compression.h"
#include "common/delta/signature_rounds.h"
#include "common/io/file.h"

namespace fs = std::filesystem;
using namespace deltasync;

namespace {

std::string read_all(const fs::path& path) {
  auto bytes = read_small_file(path, size_t{1} << 31);
  if (!bytes) {
    std::fprintf(stderr, "ds-bench-rounds: %s\n", bytes.error().message().c_str());
    std::exit(1);
  }
  return std::move(*bytes);
}

size_t packed(std::string_view bytes) {
  auto compressed = zstd_compress(bytes, 3);
  return compressed ? compressed->size() : bytes.size();
}

struct Totals {
  size_t signature_bytes = 0;
  std::string deltas;
  double seconds = 0;
  std::map<int, int> rounds;  // rounds -> files
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ds-bench-rounds DIR   (N.old / N.new file pairs)\n");
    return 2;
  }
  Totals one, rounds;
  int files = 0;
  uint64_t new_bytes = 0;
  for (const auto& entry : fs::directory_iterator(argv[1])) {
    if (entry.path().extension() != ".new") continue;
    fs::path old_path = entry.path();
    old_path.replace_extension(".old");
    std::string basis = read_all(old_path), target = read_all(entry.path());
    if (basis.empty()) continue;
    ++files, new_bytes += target.size();
    MemoryRandomAccess basis_input(basis), target_input(target);

    auto start = std::chrono::steady_clock::now();
    {
      MemorySource basis_stream(basis), target_stream(target);
      auto signature =
          rsync_signature(basis_stream, choose_signature_params(basis.size(), target.size()));
      auto loaded = RsyncSignature::load(signature.value());
      StringSink delta;
      (void)rsync_delta(**loaded, target_stream, delta);
      one.signature_bytes += packed(*signature);
      one.deltas += delta.data();
    }
    auto middle = std::chrono::steady_clock::now();
    {
      RoundsDelta builder(target_input, basis.size());
      std::optional<SignatureAsk> ask = first_signature_ask(basis.size(), target.size());
      while (ask) {
        SignatureRound round{*ask, signature_of_ask(basis_input, *ask).value()};
        rounds.signature_bytes += packed(round.signature) + 4 * ask->ranges.size();
        if (auto added = builder.add_round(round); !added) {
          std::fprintf(stderr, "%s: %s\n", entry.path().c_str(), added.error().message().c_str());
          return 1;
        }
        ask = builder.next_ask();
      }
      StringSink delta;
      (void)builder.write(delta);
      // The receiver's side: the delta must patch the basis into the new file.
      MemorySource delta_stream(delta.data());
      StringSink rebuilt;
      if (auto patched = rsync_patch(basis_input, delta_stream, rebuilt, target.size() + 1);
          !patched || rebuilt.data() != target) {
        std::fprintf(stderr, "%s: the rounds delta does not rebuild the file\n",
                     entry.path().c_str());
        return 1;
      }
      rounds.deltas += delta.data();
      ++rounds.rounds[builder.rounds()];
    }
    auto end = std::chrono::steady_clock::now();
    one.seconds += std::chrono::duration<double>(middle - start).count();
    rounds.seconds += std::chrono::duration<double>(end - middle).count();
  }
  std::printf("%d files, %llu new bytes\n\n", files, static_cast<unsigned long long>(new_bytes));
  std::printf("| | signatures | deltas (zstd-12) | total | seconds |\n|---|--:|--:|--:|--:|\n");
  for (auto* t : {&one, &rounds}) {
    size_t deltas = zstd_compress(t->deltas, 12).value().size();
    std::printf("| %s | %zu | %zu | %zu | %.2f |\n", t == &one ? "one round" : "rounds",
                t->signature_bytes, deltas, t->signature_bytes + deltas, t->seconds);
  }
  std::printf("\nfiles by rounds:");
  for (auto [n, count] : rounds.rounds) std::printf(" %d: %d;", n, count);
  std::printf("\n");
  return 0;
}
