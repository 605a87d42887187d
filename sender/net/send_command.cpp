// Steps (docs/protocol.md):
//   1. open the image; connect (TLS, mutual authentication); Hello;
//   2. the site's Inventory: the image may already be there (then only tags
//      are sent); else which layers it holds, which basis it chose, and what
//      an interrupted earlier transfer left;
//   3. LOCAL mode when this machine's engine holds the same basis layers
//      (deltas computed here, no signatures); else REMOTE: the site sends
//      its basis index (cached here by diff_id) and, per layer, librsync
//      signatures of the basis files the deltas need;
//   4. every missing layer as segments of a layer stream (the same encoder
//      as bundles); layers the site stored earlier are skipped, a partial
//      one resumes at its checkpoint;
//   5. Commit with the config; wait for the site's verified load.
#include "sender/net/send_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "common/codec/compression.h"
#include "common/engine/image_match.h"
#include "common/index/index_codec.h"
#include "common/layerstream/layer_stream.h"
#include "common/layerstream/layer_workspace.h"
#include "common/net/frame_channel.h"
#include "common/protocol/wire_channel.h"
#include "sender/commands/open_images.h"

namespace deltasync {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kIndexDigestBytes = 12;

class SignatureMap final : public BasisSignatures {
 public:
  const std::string* find(uint32_t content_id) const override {
    auto it = map_.find(content_id);
    return it == map_.end() ? nullptr : &it->second;
  }
  std::map<uint32_t, std::string>& map() { return map_; }

 private:
  std::map<uint32_t, std::string> map_;
};

// Segments go out as SegmentBegin, data frames, SegmentEnd.
class WireSegmentSink final : public SegmentSink {
 public:
  WireSegmentSink(WireChannel& wire, uint32_t target_index)
      : wire_(wire), target_index_(target_index), data_(wire) {}
  Result<ByteSink*> begin_segment(uint64_t first_entry) override {
    wire::SessionFrame frame;
    frame.mutable_segment_begin()->set_target_index(target_index_);
    frame.mutable_segment_begin()->set_first_entry(first_entry);
    DS_RETURN_IF_ERROR(wire_.send(frame));
    return &data_;
  }
  Status end_segment(uint64_t next_entry, bool layer_done) override {
    DS_RETURN_IF_ERROR(data_.finish());
    wire::SessionFrame frame;
    frame.mutable_segment_end()->set_target_index(target_index_);
    frame.mutable_segment_end()->set_next_entry(next_entry);
    frame.mutable_segment_end()->set_layer_done(layer_done);
    ++segments_;
    return wire_.send(frame);
  }
  uint64_t segments() const { return segments_; }

 private:
  WireChannel& wire_;
  uint32_t target_index_;
  DataFrameSink data_;
  uint64_t segments_ = 0;
};

fs::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return fs::path(xdg) / "deltasync";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".cache" / "deltasync";
  return fs::path("/var/tmp/deltasync-cache");
}

// gzip -6 of the given layers: what a registry pull would move.
uint64_t gzip_size_of(const std::vector<std::pair<int, uint64_t>>& layers) {
  uint64_t total = 0;
  for (const auto& [fd, size] : layers) {
    CountingSink counter;
    auto gzip = make_gzip_sink(counter, 6);
    FileSource source(fd, 0, size, "layer");
    if (!copy_exact(source, *gzip, size, "layer") || !gzip->finish()) return 0;
    total += counter.count();
  }
  return total;
}

}  // namespace

Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text,
                                                         uint16_t default_port) {
  std::string host = text;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "--to " + text + ": missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':')
        return make_error(ErrorCode::kInvalidArgument, "--to " + text + ": expected :PORT");
      port_text = text.substr(close + 2);
    }
  } else if (auto colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.empty())
    return make_error(ErrorCode::kInvalidArgument, "--to: give the receiver as HOST[:PORT]");
  uint16_t port = default_port;
  if (!port_text.empty()) {
    char* end = nullptr;
    long value = std::strtol(port_text.c_str(), &end, 10);
    if (*end != '\0' || value <= 0 || value > 65535)
      return make_error(ErrorCode::kInvalidArgument, "--to " + text + ": bad port");
    port = static_cast<uint16_t>(value);
  }
  return std::make_pair(host, port);
}

Result<SendSummary> run_send_command(const SendCommandOptions& options) {
  auto started = Clock::now();
  SendSummary summary;
  DS_ASSIGN_OR_RETURN(Effort effort, parse_effort(options.effort));
  DS_ASSIGN_OR_RETURN(auto host_port, parse_host_port(options.to, 7443));

  // Phase lines on stderr (plain, one per step; --quiet and --json omit them).
  const bool narrate = !options.quiet && !options.json;
  auto phase = [&](const std::string& text) {
    if (narrate) {
      double at = std::chrono::duration<double>(Clock::now() - started).count();
      std::fprintf(stderr, "[%6.1fs] %s\n", at, text.c_str());
    }
  };

  // 1. The image, then the connection.
  phase("exporting " + options.image);
  ImageOpener opener(options.engine);
  DS_ASSIGN_OR_RETURN(auto target, opener.open(options.image));
  const ImageInfo& info = target->info();
  summary.image_id = info.image_id.str();
  const std::vector<Digest> chain = info.diff_ids();

  ClientOptions client;
  client.identity = options.identity;
  client.host = host_port.first;
  client.port = host_port.second;
  client.limits.io_timeout = options.io_timeout;
  phase("connecting to " + options.to);
  DS_ASSIGN_OR_RETURN(auto channel, connect_channel(client));
  WireChannel wire(*channel);
  wire.on_progress([&](const wire::Progress& progress) {
    phase("site: " + progress.phase() +
          (progress.detail().empty() ? std::string() : " " + progress.detail()));
  });
  auto finish_summary = [&] {
    summary.socket_bytes_sent = channel->socket_bytes_sent();
    summary.socket_bytes_received = channel->socket_bytes_received();
    summary.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  };

  wire::SessionFrame hello_frame;
  auto& hello = *hello_frame.mutable_hello();
  hello.set_protocol_version(kProtocolVersion);
  hello.set_client_version("deltasend 0.1");
  hello.set_reference(options.image);
  hello.mutable_target()->set_image_id(info.image_id.str());
  for (const auto& d : chain) hello.mutable_target()->add_diff_ids(d.str());
  for (const auto& tag : info.tags) hello.mutable_target()->add_tags(tag);
  DS_RETURN_IF_ERROR(wire.send(hello_frame));

  // 2. What the site has.
  DS_ASSIGN_OR_RETURN(wire::SessionFrame inventory_frame,
                      wire.expect(wire::SessionFrame::kInventory, "receiver"));
  const wire::Inventory& inventory = inventory_frame.inventory();
  wire::SessionFrame commit_frame;
  auto& commit_target = *commit_frame.mutable_commit()->mutable_target();
  for (const auto& tag : info.tags) commit_target.add_tags(tag);

  auto await_result = [&]() -> Status {
    DS_ASSIGN_OR_RETURN(wire::SessionFrame result,
                        wire.expect(wire::SessionFrame::kResult, "receiver"));
    if (!result.result().ok() || result.result().image_id() != info.image_id.str()) {
      return make_error(ErrorCode::kVerifyFailed, "the site reports " + result.result().image_id() +
                                                      ", not " + info.image_id.str() + ": " +
                                                      result.result().message());
    }
    summary.index_bytes = result.result().counters().index_bytes();
    summary.signature_bytes = result.result().counters().signature_bytes();
    return ok_status();
  };

  if (inventory.has_image()) {
    summary.already_loaded = true;
    summary.mode = "none";
    DS_RETURN_IF_ERROR(wire.send(commit_frame));
    DS_RETURN_IF_ERROR(await_result());
    finish_summary();
    return summary;
  }
  if (inventory.engine_layers() > chain.size())
    return make_error(ErrorCode::kProtocol, "Inventory: engine layers out of range");

  std::set<uint32_t> stored(inventory.stored_layers().begin(), inventory.stored_layers().end());
  std::map<uint32_t, uint64_t> resume_at;
  for (const auto& partial : inventory.partial())
    resume_at[partial.target_index()] = partial.entries_done();
  std::vector<uint32_t> stream_set;
  {
    std::set<Digest> seen;
    for (uint32_t i = inventory.engine_layers(); i < chain.size(); ++i) {
      if (seen.insert(chain[i]).second) stream_set.push_back(i);
    }
  }
  std::vector<Digest> basis_chain;
  for (const auto& text : inventory.basis().diff_ids()) {
    DS_ASSIGN_OR_RETURN(Digest d, with_context(Digest::parse(text), "Inventory basis"));
    basis_chain.push_back(d);
  }

  // 3. The basis: local copy, or the site's index.
  DS_ASSIGN_OR_RETURN(auto workspace, LayerWorkspace::create(default_temp_parent(), "deltasend-"));
  std::vector<const LayerIndex*> basis_layers;
  std::vector<std::unique_ptr<LayerIndex>> received_indexes;
  LayerFiles basis_files;
  wire::SessionFrame plan_frame;
  auto& plan = *plan_frame.mutable_plan();
  std::unique_ptr<ImageReader> local_basis;
  size_t digest_bytes = 32;
  bool local = basis_chain.empty();
  if (!basis_chain.empty() && options.use_local_basis) {
    auto engine = opener.engine();
    if (engine) {
      auto match = find_image_with_layers(**engine, basis_chain, inventory.basis().reference(),
                                          inventory.basis().image_id());
      if (match) {
        ImageOpener basis_opener(options.engine);
        auto opened = basis_opener.open(match->image_id);
        if (opened) {
          local_basis = std::move(*opened);
          local = true;
        }
      }
    }
  }
  if (local) {
    plan.set_mode(wire::Plan::LOCAL);
    summary.mode = basis_chain.empty() ? "none" : "local";
    for (size_t i = 0; i < basis_chain.size(); ++i) {
      DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace->add_from_image(*local_basis, i));
      basis_layers.push_back(index);
      basis_files.fds.push_back(workspace->fd(index->diff_id));
    }
  } else {
    plan.set_mode(wire::Plan::REMOTE);
    summary.mode = "remote";
    digest_bytes = kIndexDigestBytes;
    plan.set_index_digest_bytes(static_cast<uint32_t>(digest_bytes));
    fs::path cache = options.cache_dir.empty() ? default_cache_dir() : fs::path(options.cache_dir);
    std::error_code ec;
    fs::create_directories(cache / "index", ec);
    received_indexes.resize(basis_chain.size());
    for (size_t i = 0; i < basis_chain.size(); ++i) {
      // A basis layer that is also one of the image's layers is indexed here.
      if (auto same = std::find(chain.begin(), chain.end(), basis_chain[i]); same != chain.end()) {
        auto own = workspace->add_from_image(*target, static_cast<size_t>(same - chain.begin()));
        if (own) {
          received_indexes[i] = std::make_unique<LayerIndex>(**own);
          continue;
        }
      }
      auto path =
          cache / "index" / (basis_chain[i].hex() + "-" + std::to_string(digest_bytes) + ".idx");
      auto bytes = read_small_file(path, size_t{1} << 30);
      if (bytes) {
        auto decoded = decode_layer_index(*bytes, path.string());
        if (decoded && decoded->diff_id == basis_chain[i]) {
          received_indexes[i] = std::make_unique<LayerIndex>(std::move(*decoded));
          continue;
        }
      }
      plan.add_index_layers(static_cast<uint32_t>(i));
    }
  }
  for (uint32_t t : stream_set) plan.add_layers(t);
  DS_RETURN_IF_ERROR(wire.send(plan_frame));
  phase(std::string(local ? "basis held here" : "basis held only by the site") +
        (basis_chain.empty() ? " (none)" : ": " + inventory.basis().reference()));
  if (!local) {
    for (uint32_t position : plan.index_layers()) {
      std::string bytes;
      while (true) {
        DS_ASSIGN_OR_RETURN(wire::SessionFrame frame,
                            wire.expect(wire::SessionFrame::kIndexChunk, "receiver"));
        if (frame.index_chunk().basis_layer() != position)
          return make_error(ErrorCode::kProtocol, "receiver sent the index of another layer");
        if (bytes.size() + frame.index_chunk().data().size() > (size_t{1} << 30))
          return make_error(ErrorCode::kProtocol, "receiver's basis index is too large");
        bytes += frame.index_chunk().data();
        if (frame.index_chunk().last()) break;
      }
      DS_ASSIGN_OR_RETURN(LayerIndex index,
                          decode_layer_index(bytes, "the site's index of basis layer " +
                                                        std::to_string(position + 1)));
      if (index.diff_id != basis_chain[position])
        return make_error(ErrorCode::kProtocol, "receiver sent the index of another layer");
      fs::path cache =
          options.cache_dir.empty() ? default_cache_dir() : fs::path(options.cache_dir);
      (void)write_file_atomically(
          cache / "index" /
              (basis_chain[position].hex() + "-" + std::to_string(digest_bytes) + ".idx"),
          bytes);
      received_indexes[position] = std::make_unique<LayerIndex>(std::move(index));
    }
    for (const auto& index : received_indexes) basis_layers.push_back(index.get());
  }
  Basis basis = Basis::build(basis_layers, 32 << 20, digest_bytes);

  // The pull estimate runs beside the transfer.
  std::vector<std::pair<int, uint64_t>> missing_files;
  for (uint32_t t : stream_set) {
    DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace->add_from_image(*target, t));
    summary.missing_layer_bytes += index->tar_size;
    missing_files.emplace_back(workspace->fd(index->diff_id), index->tar_size);
  }
  auto pull_estimate =
      std::async(std::launch::async, [missing_files] { return gzip_size_of(missing_files); });

  // 4. The layer streams.
  SignatureMap signatures;
  EncoderOptions encoder_options{effort, std::max(1, options.threads),
                                 local ? nullptr : &signatures};
  LayerStreamEncoder encoder(basis, basis_files, encoder_options);
  for (uint32_t t : stream_set) {
    const LayerIndex& index = *workspace->index(chain[t]);
    int fd = workspace->fd(chain[t]);
    if (stored.count(t)) {
      encoder.skip_entries(index, 0, index.entries.size());
      continue;
    }
    uint64_t first = 0;
    if (auto it = resume_at.find(t); it != resume_at.end()) {
      first = std::min<uint64_t>(it->second, index.entries.size());
      ++summary.layers_resumed;
    }
    encoder.skip_entries(index, 0, first);
    if (!local) {
      signatures.map().clear();
      phase("asking the site for signatures (layer " + std::to_string(t + 1) + ")");
      auto candidates = encoder.delta_candidates(index, first);
      if (!candidates.empty()) {
        wire::SessionFrame request;
        for (const auto& c : candidates) {
          auto* item = request.mutable_signature_request()->add_items();
          item->set_content_id(c.content_id);
          item->set_target_size(c.target_size);
        }
        DS_RETURN_IF_ERROR(wire.send(request));
        while (true) {
          DS_ASSIGN_OR_RETURN(wire::SessionFrame frame, wire.receive());
          if (frame.has_progress()) continue;
          if (frame.has_signatures_done()) break;
          if (!frame.has_signature_chunk())
            return make_error(ErrorCode::kProtocol,
                              "expected signatures, receiver sent " +
                                  std::string(frame_kind_name(frame.kind_case())));
          std::string& packed = signatures.map()[frame.signature_chunk().content_id()];
          if (packed.size() + frame.signature_chunk().data().size() > (size_t{1} << 30))
            return make_error(ErrorCode::kProtocol, "receiver's signature is too large");
          packed += frame.signature_chunk().data();
        }
        // Each arrives zstd-compressed.
        for (auto& [content_id, bytes] : signatures.map()) {
          DS_ASSIGN_OR_RETURN(
              bytes, with_context(zstd_decompress(bytes, size_t{1} << 30),
                                  "signature of basis content " + std::to_string(content_id)));
        }
      }
    }
    phase("sending layer " + std::to_string(t + 1) + "/" + std::to_string(chain.size()) + " (" +
          chain[t].short_str() + (first > 0 ? ", resuming at entry " + std::to_string(first) : "") +
          ")");
    WireSegmentSink sink(wire, t);
    LayerStreamStats stats;
    DS_RETURN_IF_ERROR(
        with_context(encoder.encode_segments(index, fd, first, options.segment_bytes, sink, stats),
                     "layer " + std::to_string(t + 1) + " (" + chain[t].short_str() + ")"));
    summary.stream_bytes += stats.stream_bytes;
    ++summary.layers_sent;
    spdlog::info("layer {} ({}): {} segments, {} entries, {} deltas, {} literal bytes, stream {}",
                 t + 1, chain[t].short_str(), sink.segments(), stats.entries, stats.delta_files,
                 stats.literal_bytes, stats.stream_bytes);
  }

  // 5. Commit: the config (coded on the basis config when both hold it).
  if (local_basis && inventory.basis_config_known() &&
      local_basis->info().image_id.str() == inventory.basis().image_id()) {
    DS_ASSIGN_OR_RETURN(
        std::string coded,
        zstd_compress_with_prefix(info.config_bytes, local_basis->info().config_bytes, 19));
    commit_target.set_config_on_basis(coded);
  } else {
    DS_ASSIGN_OR_RETURN(std::string packed, zstd_compress(info.config_bytes, 19));
    commit_target.set_config_zstd(packed);
  }
  phase("verifying and loading on the site");
  DS_RETURN_IF_ERROR(wire.send(commit_frame));
  DS_RETURN_IF_ERROR(await_result());
  finish_summary();
  summary.pull_estimate_bytes = pull_estimate.get();
  return summary;
}

}  // namespace deltasync
