// Steps, each of which can fail without touching the engine until the last:
//   1. verify the bundle's checksum end to end (truncation, bit flips);
//   2. find an engine image holding the basis layers; export it and copy
//      those layers into a scratch workspace, indexing them (same numbering
//      as the sender's);
//   3. rebuild every carried layer from its stream; each must hash to its
//      diff_id; the config must hash to the image ID and list these layers;
//   4. stream a docker-archive of only the layers the engine lacks into
//      POST /images/load, then check the image ID and apply the tags.
#include "receiver/apply/apply_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/bundle/bundle_file.h"
#include "common/codec/compression.h"
#include "common/crypto/signing.h"
#include "common/engine/engine_client.h"
#include "common/engine/image_match.h"
#include "common/layerstream/layer_stream.h"
#include "common/layerstream/layer_workspace.h"
#include "common/load/image_loader.h"
#include "common/protocol/distribution_codec.h"
#include "common/store/engine_image_import.h"
#include "receiver/apply/keep_in_store.h"

namespace deltasync {

namespace {

Result<std::vector<Digest>> parse_digests(
    const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& what) {
  std::vector<Digest> out;
  for (const auto& text : list) {
    auto d = Digest::parse(text);
    if (!d) return make_error(ErrorCode::kCorrupt, what + ": " + d.error().message());
    out.push_back(*d);
  }
  return out;
}

// Who made the bundle, checked against what this site trusts, before
// anything is rebuilt. Returns who signed it ("" when unsigned and allowed).
Result<std::string> check_signature(const BundleReader& bundle,
                                    const ApplyCommandOptions& options) {
  const std::string what = "bundle " + options.bundle;
  SignatureTrust trust;
  if (!options.ca.empty()) DS_RETURN_IF_ERROR(with_context(trust.add_ca_file(options.ca), what));
  trust.set_allowed_names(options.allowed_names);
  for (const auto& key : options.trusted_keys)
    DS_RETURN_IF_ERROR(with_context(trust.add_ed25519_public_key_file(key), what));
  if (bundle.signature().scheme == BundleSignature::Scheme::kNone) {
    if (options.allow_unsigned) {
      spdlog::warn("{} is not signed; applying it because of --allow-unsigned", what);
      return std::string();
    }
    return make_error(
        ErrorCode::kVerifyFailed,
        what + " is not signed" +
            (bundle.format_version() < 2 ? " (format 1, from an older deltasend)" : "") +
            ", so nothing says it came from your build host; ask for a signed one "
            "(deltasend bundle with --cert/--key or --signing-key), or pass "
            "--allow-unsigned to apply it anyway");
  }
  if (trust.empty())
    return make_error(ErrorCode::kVerifyFailed,
                      what +
                          " is signed, but this site trusts no signer yet: set ca (and "
                          "allow-client) in the config, or give --ca / --trusted-key");
  auto signer = trust.verify(bundle.signature(), bundle.digest());
  if (!signer)
    return std::unexpected(Error(
        ErrorCode::kVerifyFailed,
        what + " is refused: " + signer.error().message() + "; nothing was rebuilt or loaded"));
  return *signer;
}

}  // namespace

Status run_apply_command(const ApplyCommandOptions& options) {
  auto started = std::chrono::steady_clock::now();
  // 1. The bundle, verified end to end before anything else.
  DS_ASSIGN_OR_RETURN(auto bundle, BundleReader::open(options.bundle));
  DS_RETURN_IF_ERROR(bundle->verify());
  DS_ASSIGN_OR_RETURN(std::string signed_by, check_signature(*bundle, options));
  auto verified = std::chrono::steady_clock::now();
  const wire::BundleHeader& header = bundle->header();
  DS_ASSIGN_OR_RETURN(auto target_chain,
                      parse_digests(header.target().diff_ids(), "bundle target"));
  DS_ASSIGN_OR_RETURN(auto basis_chain, parse_digests(header.basis().diff_ids(), "bundle basis"));

  // 2. The basis, from the engine.
  DS_ASSIGN_OR_RETURN(std::string address, resolve_engine_address(options.engine));
  EngineClient engine(EngineOptions{address});
  DS_RETURN_IF_ERROR(engine.ping());
  DS_ASSIGN_OR_RETURN(BaseImageMatch base,
                      find_image_with_layers(engine, basis_chain, header.basis().reference(),
                                             header.basis().image_id()));
  DS_ASSIGN_OR_RETURN(
      auto workspace,
      LayerWorkspace::create(options.store ? options.store->tmp_dir() : default_temp_parent(),
                             "deltarecvd-apply-"));
  std::vector<const LayerIndex*> basis_layers;
  std::vector<StoredLayer> stored_basis;  // keeps the store's files open
  std::optional<std::string> base_config;
  bool basis_from_store = false;
  if (!basis_chain.empty() && options.store) {
    // From the store; brought in from one export of the base when missing.
    LayerStore& store = *options.store;
    bool complete = std::all_of(basis_chain.begin(), basis_chain.end(),
                                [&](const Digest& d) { return store.has(d); });
    if (auto id = Digest::parse(header.basis().image_id())) base_config = store.read_config(*id);
    if (!complete || (!base_config && header.target().config().empty())) {
      DS_ASSIGN_OR_RETURN(EngineImageImport imported,
                          import_engine_image(store, engine, base.image_id));
      if (imported.config_digest.str() == header.basis().image_id())
        base_config = std::move(imported.config);
    }
    for (const auto& d : basis_chain) {
      store.pin(d);
      auto layer = store.open_layer(d);
      if (!layer) {
        stored_basis.clear();
        break;
      }
      stored_basis.push_back(std::move(*layer));
    }
    basis_from_store = stored_basis.size() == basis_chain.size();
    if (basis_from_store)
      for (const auto& layer : stored_basis) basis_layers.push_back(layer.index.get());
  }
  if (!basis_chain.empty() && !basis_from_store) {
    ImageRef ref;
    ref.transport = ImageRef::Transport::kEngine;
    ref.location = base.image_id;
    ref.original = base.image_id;
    DS_ASSIGN_OR_RETURN(auto base_image, open_image(ref, &engine));
    if (base_image->info().image_id.str() == header.basis().image_id())
      base_config = base_image->info().config_bytes;
    for (size_t i = 0; i < basis_chain.size(); ++i) {
      DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace->add_from_image(*base_image, i));
      basis_layers.push_back(index);
    }
  }
  struct Unpin {
    LayerStore* store;
    const std::vector<Digest>& chain;
    ~Unpin() {
      if (store)
        for (const auto& d : chain) store->unpin(d);
    }
  } unpin{options.store && !basis_chain.empty() ? options.store : nullptr, basis_chain};
  // The target config: plain, or coded against the base image's config.
  std::string config = header.target().config();
  if (config.empty()) {
    if (!base_config) {
      return make_error(ErrorCode::kNotFound,
                        "bundle " + options.bundle +
                            ": its image config is coded against base image " +
                            header.basis().image_id() + " (" + header.basis().reference() +
                            "), which the engine at " + address +
                            " does not hold (an image with the same layers is not enough: load " +
                            header.basis().reference() + " here first)");
    }
    DS_ASSIGN_OR_RETURN(config,
                        with_context(zstd_decompress_with_prefix(header.target().config_on_basis(),
                                                                 *base_config, 16 << 20),
                                     "bundle " + options.bundle + ": image config"));
  }
  Digest image_id = Digest::of(config);
  if (!header.target().image_id().empty() && header.target().image_id() != image_id.str()) {
    return make_error(
        ErrorCode::kVerifyFailed,
        "bundle " + options.bundle + ": the image config does not hash to the image ID");
  }
  DS_ASSIGN_OR_RETURN(auto config_chain, config_diff_ids(config));
  if (target_chain.empty()) target_chain = config_chain;
  if (config_chain != target_chain) {
    return make_error(ErrorCode::kCorrupt, "bundle " + options.bundle +
                                               ": the config's layers differ from the header's");
  }

  // The build host's distribution identity, when the bundle carries one;
  // a damaged one costs only the exact Id (the content identity stands).
  std::optional<DistributionIdentity> distribution;
  std::string identity_note;
  if (!header.target().distribution_zstd().empty()) {
    auto decoded = decode_distribution(header.target().distribution_zstd(), target_chain);
    if (decoded)
      distribution = std::move(*decoded);
    else
      identity_note =
          "the build host's distribution identity was not kept: " + decoded.error().message();
  }

  Basis basis = Basis::build(basis_layers);
  LayerFiles basis_files;
  // The basis layers' files, wherever they are, by diff_id.
  std::map<Digest, LayerFileRef> basis_file_of;
  for (size_t i = 0; i < basis_layers.size(); ++i) {
    const Digest& d = basis_layers[i]->diff_id;
    LayerFileRef file = basis_from_store
                            ? LayerFileRef{stored_basis[i].fd.get(), stored_basis[i].size}
                            : LayerFileRef{workspace->fd(d), workspace->size(d)};
    basis_file_of[d] = file;
    basis_files.fds.push_back(file.fd);
  }

  auto basis_ready = std::chrono::steady_clock::now();
  // 3. Rebuild and verify every carried layer.
  LayerStreamDecoder decoder(basis, basis_files);
  uint64_t rebuilt_bytes = 0;
  for (int n = 0; n < header.layers_size(); ++n) {
    DS_ASSIGN_OR_RETURN(wire::LayerBegin begin, bundle->next_layer());
    const auto& plan = header.layers(n);
    if (begin.target_index() != plan.target_index() || plan.target_index() >= target_chain.size() ||
        (!plan.diff_id().empty() && plan.diff_id() != target_chain[plan.target_index()].str())) {
      return make_error(ErrorCode::kCorrupt, "bundle " + options.bundle + ": layer " +
                                                 std::to_string(n + 1) +
                                                 " does not match the header");
    }
    const Digest& diff_id = target_chain[plan.target_index()];
    std::string name =
        "layer " + std::to_string(plan.target_index() + 1) + " (" + diff_id.short_str() + ")";
    DS_ASSIGN_OR_RETURN(auto file, workspace->create_file(diff_id));
    DS_ASSIGN_OR_RETURN(auto output,
                        decoder.decode(bundle->layer_stream(), file.second.get(), name));
    if (output.digest != diff_id) {
      return make_error(ErrorCode::kVerifyFailed,
                        name + ": rebuilt layer hashes to " + output.digest.str() +
                            " (the bundle was made against a different base, or is damaged)");
    }
    char probe;
    DS_ASSIGN_OR_RETURN(size_t extra, bundle->layer_stream().read(std::span<char>(&probe, 1)));
    if (extra != 0)
      return make_error(ErrorCode::kCorrupt, name + ": extra data after the layer stream");
    rebuilt_bytes += output.size;
    workspace->adopt_rebuilt(diff_id, std::move(file.second), output.size);
  }
  auto rebuilt = std::chrono::steady_clock::now();

  // 4. Load only what the engine lacks, then check and tag.
  size_t engine_prefix = common_prefix(target_chain, base.engine_chain);
  std::vector<std::string> tags(header.target().tags().begin(), header.target().tags().end());
  for (const auto& tag : options.extra_tags)
    if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.push_back(tag);
  DS_ASSIGN_OR_RETURN(
      LoadedImage loaded,
      load_image_into_engine(
          engine, config, target_chain, engine_prefix,
          [&](const Digest& d) -> Result<LayerFileRef> {
            if (workspace->has(d)) return LayerFileRef{workspace->fd(d), workspace->size(d)};
            if (auto it = basis_file_of.find(d); it != basis_file_of.end()) return it->second;
            return make_error(ErrorCode::kCorrupt,
                              "layer " + d.str() + " is neither in the bundle nor in the basis");
          },
          tags, LoadOptions{distribution ? &*distribution : nullptr, workspace->dir()}));
  if (identity_note.empty()) identity_note = loaded.identity_note;
  auto load_done = std::chrono::steady_clock::now();
  if (options.store) {
    std::vector<Digest> rebuilt_layers;
    for (const auto& plan : header.layers())
      rebuilt_layers.push_back(target_chain[plan.target_index()]);
    keep_in_store(*options.store, *workspace, rebuilt_layers, config, loaded.engine_id);
  }
  auto finished = std::chrono::steady_clock::now();
  auto seconds = [](auto from, auto to) {
    return std::chrono::duration<double>(to - from).count();
  };
  double basis_s = seconds(started, basis_ready);
  double rebuild_s = seconds(basis_ready, rebuilt);
  double load_s = seconds(rebuilt, finished);
  if (options.outcome) {
    *options.outcome = ApplyOutcome{image_id.str(),
                                    loaded.engine_id,
                                    signed_by,
                                    rebuilt_bytes,
                                    static_cast<size_t>(header.layers_size()),
                                    engine_prefix,
                                    loaded.same_as_source,
                                    {{"verify", seconds(started, verified)},
                                     {"basis", seconds(verified, basis_ready)},
                                     {"rebuild", rebuild_s},
                                     {"load", seconds(rebuilt, load_done)},
                                     {"store", seconds(load_done, finished)}}};
  }

  if (options.json) {
    nlohmann::json out = {
        {"image_id", image_id.str()},
        {"config_digest", image_id.str()},
        {"engine_image_id", loaded.engine_id},
        {"manifest_digest", loaded.engine_id_is_manifest() ? loaded.engine_id : ""},
        {"image_store", loaded.store},
        {"signed_by", signed_by},
        {"same_id_as_build_host", loaded.same_as_source},
        {"build_host_image_id", distribution ? distribution->target.digest.str() : ""},
        {"identity_note", identity_note},
        {"tags", tags},
        {"layers_rebuilt", header.layers_size()},
        {"rebuilt_bytes", rebuilt_bytes},
        {"layers_reused", engine_prefix},
        {"basis_seconds", basis_s},
        {"rebuild_seconds", rebuild_s},
        {"load_seconds", load_s},
        {"engine", address}};
    std::printf("%s\n", out.dump(2).c_str());
  } else if (!options.quiet) {
    std::printf("loaded %s%s%s into %s\n", image_id.str().c_str(), tags.empty() ? "" : " as ",
                tags.empty() ? "" : tags.front().c_str(), address.c_str());
    std::printf("  %s\n", signed_by.empty() ? "unsigned bundle (--allow-unsigned)"
                                            : ("signed by " + signed_by).c_str());
    std::printf(
        "  basis read from the engine in %.2fs; %d layers rebuilt and verified (%.1f MiB) in %.2fs "
        "(%.0f MB/s);"
        " %zu reused from the engine; load %.2fs\n",
        basis_s, header.layers_size(), static_cast<double>(rebuilt_bytes) / (1 << 20), rebuild_s,
        rebuild_s > 0 ? static_cast<double>(rebuilt_bytes) / 1e6 / rebuild_s : 0.0, engine_prefix,
        load_s);
    if (loaded.same_as_source) {
      std::printf(
          "  %s: image ID %s is the build host's (%s; every blob rebuilt and its digest "
          "checked)\n",
          loaded.store.c_str(), loaded.engine_id.c_str(), distribution->describe().c_str());
    } else if (loaded.engine_id_is_manifest()) {
      if (!identity_note.empty()) std::printf("  note: %s\n", identity_note.c_str());
      std::printf(
          "  %s: image ID %s is the manifest deltarecvd wrote (uncompressed layers), verified "
          "with config %s and every diff_id; the build host's manifest digest is not reproduced "
          "(docs/engines.md)\n",
          loaded.store.c_str(), loaded.engine_id.c_str(), image_id.str().c_str());
    }
  }
  return ok_status();
}

}  // namespace deltasync
