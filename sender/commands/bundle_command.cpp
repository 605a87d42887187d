// Steps: open both images; copy the base layers and the target's missing
// layers into a scratch workspace (verifying and indexing each once); build
// the basis; write the header, one layer stream per missing layer, and the
// trailer into a temp file that is renamed into place only when complete.
#include "sender/commands/bundle_command.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <set>

#include "common/bundle/bundle_file.h"
#include "common/codec/compression.h"
#include "common/layerstream/layer_stream.h"
#include "common/layerstream/layer_workspace.h"
#include "sender/commands/open_images.h"
#include "sender/diff/image_diff.h"
#include "sender/identity/source_identity.h"

namespace deltasync {

Status run_bundle_command(const BundleCommandOptions& options) {
  auto started = std::chrono::steady_clock::now();
  DS_ASSIGN_OR_RETURN(Effort effort, parse_effort(options.effort));
  if (options.output.empty())
    return make_error(ErrorCode::kInvalidArgument, "bundle: give the output file with -o FILE");

  // The two images are exported by the engine at the same time (each
  // opener has its own engine client: a client serves one call at a time).
  ImageOpener opener(options.engine, options.platform);
  ImageOpener base_opener(options.engine, options.platform);
  std::future<Result<std::unique_ptr<ImageReader>>> base_future;
  if (!options.base.empty()) {
    base_future = std::async(std::launch::async, [&] { return base_opener.open(options.base); });
  }
  auto target_result = opener.open(options.image);
  std::unique_ptr<ImageReader> base;
  if (base_future.valid()) {
    DS_ASSIGN_OR_RETURN(base, base_future.get());
  }
  DS_ASSIGN_OR_RETURN(auto target, std::move(target_result));

  DS_ASSIGN_OR_RETURN(auto workspace,
                      LayerWorkspace::create(default_temp_parent(), "deltasend-bundle-"));
  std::vector<const LayerIndex*> base_layers;
  std::set<Digest> base_diff_ids;
  if (base) {
    for (size_t i = 0; i < base->info().layers.size(); ++i) {
      DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace->add_from_image(*base, i));
      base_layers.push_back(index);
      base_diff_ids.insert(index->diff_id);
    }
  }
  Basis basis = Basis::build(base_layers);
  LayerFiles basis_files;
  for (const auto* layer : base_layers) basis_files.fds.push_back(workspace->fd(layer->diff_id));

  const ImageInfo& info = target->info();
  DS_ASSIGN_OR_RETURN(
      SourceIdentity identity,
      prepare_source_identity(*target, options.require_same_id, sender_cache_dir("")));
  wire::BundleHeader header;
  header.set_format_version(kBundleFormatVersion);
  header.set_effort(std::string(effort_name(effort)));
  header.set_created_by("deltasend 0.1");
  auto* image = header.mutable_target();
  if (base) {
    DS_ASSIGN_OR_RETURN(std::string coded, zstd_compress_with_prefix(
                                               info.config_bytes, base->info().config_bytes, 19));
    image->set_config_on_basis(coded);
  } else {
    image->set_config(info.config_bytes);
  }
  // With a plain config the layer list is sent explicitly; a coded config
  // carries it (rootfs.diff_ids), so it is not repeated.
  if (!base) {
    for (const auto& layer : info.layers) image->add_diff_ids(layer.diff_id.str());
  }
  for (const auto& tag : info.tags) image->add_tags(tag);
  image->set_distribution_zstd(identity.encoded);
  if (base) {
    for (const auto& layer : base->info().layers)
      header.mutable_basis()->add_diff_ids(layer.diff_id.str());
    header.mutable_basis()->set_image_id(base->info().image_id.str());
    header.mutable_basis()->set_reference(options.base);
  }
  std::vector<size_t> missing;
  std::set<Digest> planned;
  uint64_t missing_bytes = 0;
  for (size_t i = 0; i < info.layers.size(); ++i) {
    const Digest& diff_id = info.layers[i].diff_id;
    if (base_diff_ids.count(diff_id) || planned.count(diff_id)) continue;
    DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace->add_from_image(*target, i));
    planned.insert(diff_id);
    missing.push_back(i);
    missing_bytes += index->tar_size;
    auto* plan = header.add_layers();
    plan->set_target_index(static_cast<uint32_t>(i));
    plan->set_tar_size(index->tar_size);
    plan->set_entries(index->entries.size());
  }
  auto prepared = std::chrono::steady_clock::now();

  std::unique_ptr<BundleSigner> signer;
  if (!options.unsigned_bundle && !options.signing_key.empty()) {
    DS_ASSIGN_OR_RETURN(signer, BundleSigner::from_ed25519_key(options.signing_key));
  } else if (!options.unsigned_bundle && !options.cert.empty() && !options.key.empty()) {
    DS_ASSIGN_OR_RETURN(
        signer, with_context(BundleSigner::from_certificate(options.cert, options.key),
                             "signing the bundle with cert/key (from the command line, "
                             "DELTASEND_CERT/KEY or the config file; --unsigned writes none)"));
  } else if (!options.unsigned_bundle) {
    spdlog::warn(
        "the bundle is not signed (no --cert/--key or --signing-key): deltarecvd apply refuses it "
        "unless given --allow-unsigned");
  }
  DS_ASSIGN_OR_RETURN(auto file, AtomicFile::create(options.output));
  BufferedSink buffered(*file, 1 << 20);
  BundleWriter writer(buffered);
  writer.set_signer(signer.get());
  DS_RETURN_IF_ERROR(writer.write_header(header));
  LayerStreamEncoder encoder(basis, basis_files,
                             EncoderOptions{effort, std::max(1, options.threads)});
  LayerStreamStats total;
  for (size_t i : missing) {
    const Digest& diff_id = info.layers[i].diff_id;
    DS_RETURN_IF_ERROR(writer.begin_layer(static_cast<uint32_t>(i)));
    LayerStreamStats stats;
    DS_RETURN_IF_ERROR(
        with_context(encoder.encode(*workspace->index(diff_id), workspace->fd(diff_id),
                                    writer.layer_data(), stats),
                     "layer " + std::to_string(i + 1) + " (" + diff_id.short_str() + ")"));
    DS_RETURN_IF_ERROR(writer.end_layer(static_cast<uint32_t>(i)));
    spdlog::info(
        "layer {} ({}): {} entries, {} coded headers, {} same-as-basis, {} deltas ({} -> {}), {} "
        "literal files ({}), stream {}",
        i + 1, diff_id.short_str(), stats.entries, stats.headers_coded, stats.same_as_basis,
        stats.delta_files, stats.delta_source_bytes, stats.delta_bytes, stats.literal_files,
        stats.literal_bytes, stats.stream_bytes);
    total.add(stats);
  }
  DS_RETURN_IF_ERROR(writer.finish());
  DS_RETURN_IF_ERROR(file->publish());
  auto finished = std::chrono::steady_clock::now();
  double prepare_s = std::chrono::duration<double>(prepared - started).count();
  double encode_s = std::chrono::duration<double>(finished - prepared).count();

  if (options.json) {
    nlohmann::json out = {{"bundle", options.output},
                          {"bytes", writer.bytes_written()},
                          {"image_id", info.image_id.str()},
                          {"config_digest", info.image_id.str()},
                          {"build_host_image_id", identity.image_id},
                          {"same_id_on_containerd_store", identity.reproducible()},
                          {"distribution_bytes", identity.encoded.size()},
                          {"layers_total", info.layers.size()},
                          {"layers_in_bundle", missing.size()},
                          {"missing_layer_bytes", missing_bytes},
                          {"effort", effort_name(effort)},
                          {"signed_by", signer ? signer->describe() : ""},
                          {"prepare_seconds", prepare_s},
                          {"encode_seconds", encode_s},
                          {"files",
                           {{"entries", total.entries},
                            {"headers_coded", total.headers_coded},
                            {"same_as_basis", total.same_as_basis},
                            {"same_as_earlier", total.same_as_earlier},
                            {"deltas", total.delta_files},
                            {"delta_source_bytes", total.delta_source_bytes},
                            {"delta_bytes", total.delta_bytes},
                            {"literals", total.literal_files},
                            {"literal_bytes", total.literal_bytes}}}};
    std::string text = out.dump(2);
    std::printf("%s\n", text.c_str());
  } else if (!options.quiet) {
    std::printf("wrote %s: %s for %zu of %zu layers (%s of layer data; %.2f%%)\n",
                options.output.c_str(), human_bytes(writer.bytes_written()).c_str(), missing.size(),
                info.layers.size(), human_bytes(missing_bytes).c_str(),
                missing_bytes ? 100.0 * static_cast<double>(writer.bytes_written()) /
                                    static_cast<double>(missing_bytes)
                              : 0.0);
    std::printf(
        "  files: %llu same as the base, %llu same as earlier, %llu deltas (%s -> %s), %llu "
        "literal (%s)\n",
        static_cast<unsigned long long>(total.same_as_basis),
        static_cast<unsigned long long>(total.same_as_earlier),
        static_cast<unsigned long long>(total.delta_files),
        human_bytes(total.delta_source_bytes).c_str(), human_bytes(total.delta_bytes).c_str(),
        static_cast<unsigned long long>(total.literal_files),
        human_bytes(total.literal_bytes).c_str());
    std::printf("  identity: %s\n", identity.summary().c_str());
    std::printf("  %s\n", signer ? ("signed by " + signer->describe()).c_str()
                                 : "not signed (deltarecvd apply needs --allow-unsigned)");
    std::printf("  time: %.2fs reading images, %.2fs encoding (effort %s)\n", prepare_s, encode_s,
                std::string(effort_name(effort)).c_str());
  }
  return ok_status();
}

}  // namespace deltasync
