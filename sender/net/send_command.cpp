// Steps for each site (docs/protocol.md):
//   1. connect (TLS, mutual authentication); Hello;
//   2. the site's Inventory: the image may already be there (then only tags
//      are sent); else which layers it holds, which basis it chose, and what
//      an interrupted earlier transfer left;
//   3. LOCAL mode when this machine's engine, or else its layer cache,
//      holds the same basis layers (deltas computed here, no signatures);
//      else REMOTE: the site sends
//      its basis index (cached here by diff_id) and, per layer, librsync
//      signatures of the basis files the deltas need;
//   4. every missing layer as segments of a layer stream (the same encoder
//      as bundles); layers the site stored earlier are skipped, a partial
//      one resumes at its checkpoint;
//   5. Commit with the config; wait for the site's verified load.
//
// A dry run does 1-3 and codes the streams into a counter instead of the
// socket: the estimate of a real run's wire bytes is what the dry run moved
// (handshake, inventory, signatures, commit and result, all real), less the
// basis index (cached for the real run), plus the frames and TLS records the
// counted streams would fill.
//
// Several sites: each runs these steps on its own thread. Sites whose
// inventory matches in LOCAL mode (same basis, same layers held, nothing to
// resume) share one coding of the streams, spooled to disk by whichever
// gets there first.
#include "sender/net/send_command.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/codec/compression.h"
#include "common/index/index_codec.h"
#include "common/layerstream/layer_stream.h"
#include "common/net/frame_channel.h"
#include "common/protocol/signature_ask_codec.h"
#include "common/protocol/wire_channel.h"
#include "sender/net/send_source.h"

namespace deltasync {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kIndexDigestBytes = 12;
// A SignatureRequest is cut after about this many bytes of items (frames are
// limited to 4 MiB; one item has at most kMaxSignatureRanges ranges).
constexpr size_t kSignatureRequestBytes = 1 << 20;
// While it matches signatures the sender tells the site it is alive this often.
constexpr auto kMatchingHeartbeat = std::chrono::seconds(20);
constexpr uint16_t kDefaultPort = 7443;

// What the site sent for each basis content of a layer, and the delta of
// the new file the rounds were asked for, as they left it.
class SignatureMap final : public BasisSignatures {
 public:
  struct Entry {
    std::vector<SignatureRound> rounds;
    uint64_t target_offset = 0;
    std::unique_ptr<FileRangeRandomAccess> new_file;
    std::unique_ptr<RoundsDelta> matched;
  };
  const std::vector<SignatureRound>* find(uint32_t content_id) const override {
    auto it = map_.find(content_id);
    return it == map_.end() ? nullptr : &it->second.rounds;
  }
  const RoundsDelta* matched(uint32_t content_id, uint64_t target_offset) const override {
    auto it = map_.find(content_id);
    if (it == map_.end() || it->second.target_offset != target_offset) return nullptr;
    return it->second.matched.get();
  }
  std::map<uint32_t, Entry>& map() { return map_; }

 private:
  std::map<uint32_t, Entry> map_;
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

// Bytes at the socket for one frame of `payload_bytes`, as FrameChannel
// writes it: a 4-byte prefix, TLS 1.3 records of at most 16 KiB, each with
// 22 bytes of header, content type and tag; frames over 64 KiB write their
// prefix in a record of its own.
uint64_t frame_wire_bytes(uint64_t payload_bytes) {
  constexpr uint64_t kRecord = 16384, kRecordOverhead = 22, kCoalesce = 64 * 1024;
  auto records = [&](uint64_t n) { return (n + kRecord - 1) / kRecord; };
  if (4 + payload_bytes <= kCoalesce)
    return 4 + payload_bytes + kRecordOverhead * records(4 + payload_bytes);
  return 4 + kRecordOverhead + payload_bytes + kRecordOverhead * records(payload_bytes);
}

uint64_t frame_wire_bytes(const wire::SessionFrame& frame) {
  return frame_wire_bytes(frame.ByteSizeLong());
}

// A dry run's segments: the frames a real run would send, counted.
class CountedSegmentSink final : public SegmentSink, private ByteSink {
 public:
  explicit CountedSegmentSink(uint32_t target_index) : target_index_(target_index) {}
  Result<ByteSink*> begin_segment(uint64_t first_entry) override {
    wire::SessionFrame frame;
    frame.mutable_segment_begin()->set_target_index(target_index_);
    frame.mutable_segment_begin()->set_first_entry(first_entry);
    wire_bytes_ += frame_wire_bytes(frame);
    return static_cast<ByteSink*>(this);
  }
  Status end_segment(uint64_t next_entry, bool layer_done) override {
    DS_RETURN_IF_ERROR(finish());
    wire::SessionFrame frame;
    frame.mutable_segment_end()->set_target_index(target_index_);
    frame.mutable_segment_end()->set_next_entry(next_entry);
    frame.mutable_segment_end()->set_layer_done(layer_done);
    wire_bytes_ += frame_wire_bytes(frame);
    return ok_status();
  }
  uint64_t wire_bytes() const { return wire_bytes_; }

 private:
  Status write(std::string_view data) override {
    while (!data.empty()) {
      size_t take = std::min<size_t>(data.size(), kDataChunkBytes - pending_);
      pending_ += take;
      data.remove_prefix(take);
      if (pending_ == kDataChunkBytes) DS_RETURN_IF_ERROR(finish());
    }
    return ok_status();
  }
  Status finish() override {
    if (pending_ == 0) return ok_status();
    wire::SessionFrame frame;
    frame.set_data(std::string(pending_, '\0'));
    wire_bytes_ += frame_wire_bytes(frame);
    pending_ = 0;
    return ok_status();
  }

  uint32_t target_index_;
  size_t pending_ = 0;
  uint64_t wire_bytes_ = 0;
};

// Segments written to a spool file, to be sent to several sites.
class SpoolSegmentSink final : public SegmentSink, private ByteSink {
 public:
  // Writes through `writer` (a descriptor of layer.spool's file, owned).
  SpoolSegmentSink(SpooledLayer& layer, UniqueFd writer, const fs::path& path)
      : layer_(layer), writer_(std::move(writer), path.string()) {}
  Result<ByteSink*> begin_segment(uint64_t first_entry) override {
    current_ = SpooledLayer::Segment{first_entry, 0, false, offset_, 0};
    return static_cast<ByteSink*>(this);
  }
  Status end_segment(uint64_t next_entry, bool layer_done) override {
    current_.next_entry = next_entry;
    current_.layer_done = layer_done;
    current_.length = offset_ - current_.offset;
    layer_.segments.push_back(current_);
    return ok_status();
  }

 private:
  Status write(std::string_view data) override {
    DS_RETURN_IF_ERROR(writer_.write(data));
    offset_ += data.size();
    return ok_status();
  }
  Status finish() override { return ok_status(); }

  SpooledLayer& layer_;
  FdSink writer_;
  SpooledLayer::Segment current_;
  uint64_t offset_ = 0;
};

// A spool file, open for reading and (a second descriptor) writing.
Result<std::pair<UniqueFd, UniqueFd>> create_spool(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(errno_error(errno, "create " + path.string()));
  UniqueFd reader(fd);
  int writer = ::dup(fd);
  if (writer < 0) return std::unexpected(errno_error(errno, "dup " + path.string()));
  return std::make_pair(std::move(reader), UniqueFd(writer));
}

constexpr size_t kMaxSessionBytes = 64 * 1024;  // a DER session with two certificates: ~2 KB

fs::path default_cache_dir() {
  return sender_cache_dir("");
}

void add_stats(LayerReport& report, const LayerStreamStats& stats) {
  report.reused_bytes += stats.reused_bytes;
  report.delta_source_bytes += stats.delta_source_bytes;
  report.delta_bytes += stats.delta_bytes;
  report.literal_bytes += stats.literal_bytes;
  report.stream_bytes += stats.stream_bytes;
}

// One site's session.
class SiteSender {
 public:
  SiteSender(SendSource& source, const SendCommandOptions& options, std::string site,
             SiteProgress& progress, bool share_encoding)
      : source_(source),
        options_(options),
        site_(std::move(site)),
        progress_(progress),
        share_encoding_(share_encoding) {}

  Result<SendSummary> run();

 private:
  Status hello_and_inventory();
  Status choose_basis();
  Status receive_indexes();
  Status receive_signatures(const std::vector<DeltaCandidate>& candidates, int layer_fd,
                            SignatureMap& map);
  Status send_streams();
  Status send_spooled(const SpooledStreams& streams);
  Status commit();
  void finish_summary();
  // Where the sites' basis indexes are cached on this machine, and the
  // file of one basis layer's there.
  fs::path index_cache_dir() const;
  fs::path tls_session_path(const ClientOptions& client) const;
  fs::path cached_index_path(const Digest& diff_id) const;
  LayerReport& report_for(uint32_t t);

  SendSource& source_;
  const SendCommandOptions& options_;
  std::string site_;
  SiteProgress& progress_;
  bool share_encoding_;
  Clock::time_point started_ = Clock::now();

  SendSummary summary_;
  std::vector<Digest> chain_;
  std::unique_ptr<FrameChannel> channel_;
  std::unique_ptr<WireChannel> wire_;
  wire::Inventory inventory_;
  std::vector<Digest> basis_chain_;
  std::set<uint32_t> stored_;
  std::map<uint32_t, uint64_t> resume_at_;
  std::vector<uint32_t> stream_set_;
  bool local_ = true;
  std::optional<LocalBasis> local_basis_;
  std::vector<std::unique_ptr<LayerIndex>> received_indexes_;
  wire::Plan plan_;
  size_t digest_bytes_ = 32;
  uint64_t index_wire_bytes_ = 0;    // dry run: what the index cost (cached for the real run)
  uint64_t resumption_saving_ = 0;   // dry run: the real run's handshake will resume (fewer bytes)
  uint64_t counted_wire_bytes_ = 0;  // dry run: the streams' frames, counted
};

// One file per receiver address and sender identity (a session resumes
// only with the receiver it was made with, as the identity it was made as):
// CACHE/tls/<sha256 of host, port, certificate, CA>.session, mode 0600.
fs::path SiteSender::tls_session_path(const ClientOptions& client) const {
  Sha256 key;
  key.update(client.host + "\n" + std::to_string(client.port) + "\n");
  for (const auto& file : {client.identity.certificate, client.identity.ca_certificates}) {
    auto bytes = read_small_file(file, 1 << 20);
    key.update(bytes ? *bytes : file.string());
    key.update("\n");
  }
  return (options_.cache_dir.empty() ? default_cache_dir() : fs::path(options_.cache_dir)) / "tls" /
         (key.finish().hex().substr(0, 32) + ".session");
}

fs::path SiteSender::index_cache_dir() const {
  return (options_.cache_dir.empty() ? default_cache_dir() : fs::path(options_.cache_dir)) /
         "index";
}

fs::path SiteSender::cached_index_path(const Digest& diff_id) const {
  return index_cache_dir() / (diff_id.hex() + "-" + std::to_string(digest_bytes_) + ".idx");
}

LayerReport& SiteSender::report_for(uint32_t t) {
  for (auto& report : summary_.layers)
    if (report.position == t) return report;
  return summary_.layers.emplace_back();
}

Result<SendSummary> SiteSender::run() {
  summary_.site = site_;
  summary_.dry_run = options_.dry_run;
  const ImageInfo& info = source_.info();
  summary_.image_id = info.image_id.str();
  summary_.build_host_id = source_.identity().image_id;
  if (summary_.build_host_id != summary_.image_id)
    summary_.source_engine_id = summary_.build_host_id;
  chain_ = info.diff_ids();
  DS_RETURN_IF_ERROR(hello_and_inventory());

  if (inventory_.has_image()) {
    summary_.already_loaded = true;
    summary_.mode = "none";
    for (uint32_t t = 0; t < chain_.size(); ++t) {
      LayerReport& report = report_for(t);
      report.position = t;
      report.diff_id = chain_[t].str();
      report.disposition = "engine";
    }
    DS_RETURN_IF_ERROR(commit());  // a dry run's Commit only asks for the Result
    finish_summary();
    if (options_.dry_run)
      summary_.estimated_wire_bytes =
          summary_.socket_bytes_sent + summary_.socket_bytes_received - resumption_saving_;
    return summary_;
  }
  DS_RETURN_IF_ERROR(choose_basis());
  DS_RETURN_IF_ERROR(send_streams());
  DS_RETURN_IF_ERROR(commit());
  finish_summary();
  summary_.pull_estimate_bytes = source_.pull_estimate(stream_set_).get();
  if (options_.dry_run) {
    uint64_t moved = summary_.socket_bytes_sent + summary_.socket_bytes_received;
    // The real run resumes the TLS session this one left: no certificates.
    summary_.estimated_wire_bytes =
        moved - std::min(moved, index_wire_bytes_ + resumption_saving_) + counted_wire_bytes_;
  }
  return summary_;
}

Status SiteSender::hello_and_inventory() {
  DS_ASSIGN_OR_RETURN(auto host_port, parse_host_port(site_, kDefaultPort));
  ClientOptions client;
  client.identity = options_.identity;
  client.host = host_port.first;
  client.port = host_port.second;
  client.limits.io_timeout = options_.io_timeout;
  const fs::path session_path = tls_session_path(client);
  if (auto saved = read_small_file(session_path, kMaxSessionBytes)) client.resume_session = *saved;
  progress_.phase("connecting", "to " + site_);
  DS_ASSIGN_OR_RETURN(channel_, connect_channel(client));
  summary_.tls_session_resumed = channel_->session_resumed();
  wire_ = std::make_unique<WireChannel>(*channel_);
  wire_->on_progress([this](const wire::Progress& progress) {
    progress_.phase("site: " + progress.phase(), progress.detail());
  });

  const ImageInfo& info = source_.info();
  wire::SessionFrame hello_frame;
  auto& hello = *hello_frame.mutable_hello();
  hello.set_protocol_version(kProtocolVersion);
  hello.set_client_version("deltasend 0.1");
  hello.set_reference(options_.image);
  hello.set_dry_run(options_.dry_run);
  hello.mutable_target()->set_image_id(info.image_id.str());
  for (const auto& d : chain_) hello.mutable_target()->add_diff_ids(d.str());
  for (const auto& tag : info.tags) hello.mutable_target()->add_tags(tag);
  DS_RETURN_IF_ERROR(wire_->send(hello_frame));

  DS_ASSIGN_OR_RETURN(wire::SessionFrame inventory_frame,
                      wire_->expect(wire::SessionFrame::kInventory, "receiver"));
  inventory_ = inventory_frame.inventory();
  // The receiver's ticket came before the Inventory: keep it for next time
  // (a cache: failing to write it only costs a full handshake next time).
  if (std::string ticket = channel_->resumption_ticket(); !ticket.empty()) {
    std::error_code ec;
    fs::create_directories(session_path.parent_path(), ec);
    fs::permissions(session_path.parent_path(), fs::perms::owner_all, ec);
    if (Status saved = write_file_atomically(session_path, ticket); !saved) {
      spdlog::debug("cannot keep the TLS session: {}", saved.error().message());
    } else {
      resumption_saving_ = channel_->resumption_saving();
    }
  }
  if (inventory_.has_image()) return ok_status();
  if (inventory_.engine_layers() > chain_.size())
    return make_error(ErrorCode::kProtocol, "Inventory: engine layers out of range");
  for (uint32_t t : inventory_.stored_layers()) {
    if (t >= chain_.size())
      return make_error(ErrorCode::kProtocol, "Inventory: layer out of range");
    stored_.insert(t);
  }
  for (const auto& partial : inventory_.partial())
    resume_at_[partial.target_index()] = partial.entries_done();
  std::set<Digest> seen;
  for (uint32_t i = 0; i < chain_.size(); ++i) {
    LayerReport& report = report_for(i);
    report.position = i;
    report.diff_id = chain_[i].str();
    if (i < inventory_.engine_layers()) {
      report.disposition = "engine";
    } else if (!seen.insert(chain_[i]).second) {
      report.disposition = "store";  // the same layer twice: sent once
    } else {
      stream_set_.push_back(i);
      report.disposition = stored_.count(i) ? "store" : resume_at_.count(i) ? "resume" : "send";
    }
  }
  summary_.basis = inventory_.basis().reference().empty() ? inventory_.basis().image_id()
                                                          : inventory_.basis().reference();
  for (const auto& text : inventory_.basis().diff_ids()) {
    DS_ASSIGN_OR_RETURN(Digest d, with_context(Digest::parse(text), "Inventory basis"));
    basis_chain_.push_back(d);
  }
  return ok_status();
}

Status SiteSender::choose_basis() {
  progress_.phase("reading", "the layers the site lacks, and the basis");
  for (uint32_t t : stream_set_) {
    DS_ASSIGN_OR_RETURN(const LayerIndex* index, source_.target_layer(t));
    summary_.missing_layer_bytes += index->tar_size;
    report_for(t).layer_bytes = index->tar_size;
  }
  (void)source_.pull_estimate(stream_set_);  // starts it beside the transfer

  local_ = basis_chain_.empty();
  if (!basis_chain_.empty() && options_.use_local_basis) {
    DS_ASSIGN_OR_RETURN(local_basis_,
                        source_.local_basis(basis_chain_, inventory_.basis().reference(),
                                            inventory_.basis().image_id()));
    local_ = local_basis_.has_value();
    if (local_basis_) summary_.basis_source = local_basis_->source;
  }
  wire::SessionFrame plan_frame;
  if (local_) {
    plan_.set_mode(wire::Plan::LOCAL);
    summary_.mode = basis_chain_.empty() ? "none" : "local";
  } else {
    plan_.set_mode(wire::Plan::REMOTE);
    summary_.mode = "remote";
    digest_bytes_ = kIndexDigestBytes;
    plan_.set_index_digest_bytes(static_cast<uint32_t>(digest_bytes_));
    std::error_code ec;
    fs::create_directories(index_cache_dir(), ec);
    received_indexes_.resize(basis_chain_.size());
    const std::vector<Digest>& chain = chain_;
    for (size_t i = 0; i < basis_chain_.size(); ++i) {
      // A basis layer that is also one of the image's layers is indexed here.
      if (auto same = std::find(chain.begin(), chain.end(), basis_chain_[i]); same != chain.end()) {
        auto own = source_.target_layer(static_cast<size_t>(same - chain.begin()));
        if (own) {
          received_indexes_[i] = std::make_unique<LayerIndex>(**own);
          continue;
        }
      }
      fs::path path = cached_index_path(basis_chain_[i]);
      auto bytes = read_small_file(path, size_t{1} << 30);
      if (bytes) {
        auto decoded = decode_layer_index(*bytes, path.string());
        if (decoded && decoded->diff_id == basis_chain_[i]) {
          received_indexes_[i] = std::make_unique<LayerIndex>(std::move(*decoded));
          continue;
        }
      }
      plan_.add_index_layers(static_cast<uint32_t>(i));
    }
  }
  for (uint32_t t : stream_set_) plan_.add_layers(t);
  *plan_frame.mutable_plan() = plan_;
  DS_RETURN_IF_ERROR(wire_->send(plan_frame));
  const std::string held_here = summary_.basis_source.empty()      ? "held here"
                                : summary_.basis_source == "cache" ? "held here (layer cache)"
                                                                   : "held here (engine)";
  progress_.phase("basis",
                  std::string(local_ ? held_here : "held only by the site") +
                      (basis_chain_.empty() ? " (none)" : ": " + inventory_.basis().reference()));
  if (!local_) DS_RETURN_IF_ERROR(receive_indexes());
  return ok_status();
}

Status SiteSender::receive_indexes() {
  uint64_t before = channel_->socket_bytes_received();
  for (uint32_t position : plan_.index_layers()) {
    std::string bytes;
    while (true) {
      DS_ASSIGN_OR_RETURN(wire::SessionFrame frame,
                          wire_->expect(wire::SessionFrame::kIndexChunk, "receiver"));
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
    if (index.diff_id != basis_chain_[position])
      return make_error(ErrorCode::kProtocol, "receiver sent the index of another layer");
    (void)write_file_atomically(cached_index_path(basis_chain_[position]), bytes);
    received_indexes_[position] = std::make_unique<LayerIndex>(std::move(index));
  }
  index_wire_bytes_ = channel_->socket_bytes_received() - before;
  return ok_status();
}

// Signatures come in rounds (common/delta/signature_rounds.h): every
// candidate's first ask goes in one request; the site answers them all, the
// sender matches its new files against them and asks again for the
// candidates whose next round is worth it, until none is. Requests are cut
// so that each frame stays well under the frame limit.
Status SiteSender::receive_signatures(const std::vector<DeltaCandidate>& candidates, int layer_fd,
                                      SignatureMap& signatures) {
  signatures.map().clear();
  if (candidates.empty()) return ok_status();
  const bool rounds_allowed = inventory_.signature_rounds();
  struct Pending {
    const DeltaCandidate* candidate;
    SignatureMap::Entry* entry;
    SignatureAsk ask;
  };
  std::vector<Pending> pending;
  for (const auto& c : candidates) {
    SignatureMap::Entry& entry = signatures.map()[c.content_id];
    entry.target_offset = c.target_offset;
    entry.new_file =
        std::make_unique<FileRangeRandomAccess>(layer_fd, c.target_offset, c.target_size);
    entry.matched = std::make_unique<RoundsDelta>(*entry.new_file, c.basis_size);
    // A receiver without rounds signs the whole file at its own block size.
    pending.push_back(Pending{&c, &entry,
                              rounds_allowed ? first_signature_ask(c.basis_size, c.target_size)
                                             : whole_file_ask(c.basis_size, c.target_size)});
  }
  for (int round = 1; !pending.empty(); ++round) {
    summary_.signature_rounds = std::max<uint32_t>(summary_.signature_rounds, round);
    if (round > 1)
      progress_.phase("signatures", "round " + std::to_string(round) + ": " +
                                        std::to_string(pending.size()) + " files");
    for (size_t first = 0; first < pending.size();) {
      wire::SessionFrame request;
      size_t request_bytes = 0, end = first;
      for (; end < pending.size() && (end == first || request_bytes < kSignatureRequestBytes);
           ++end) {
        const Pending& p = pending[end];
        auto* item = request.mutable_signature_request()->add_items();
        item->set_content_id(p.candidate->content_id);
        item->set_target_size(p.candidate->target_size);
        if (rounds_allowed) put_signature_ask(p.ask, *item);
        request_bytes += 16 + 20 * p.ask.ranges.size();
      }
      DS_RETURN_IF_ERROR(wire_->send(request));
      auto last_sent = std::chrono::steady_clock::now();
      std::map<uint32_t, std::string> packed;
      while (true) {
        DS_ASSIGN_OR_RETURN(wire::SessionFrame frame, wire_->receive());
        if (frame.has_progress()) continue;
        if (frame.has_signatures_done()) break;
        if (!frame.has_signature_chunk())
          return make_error(ErrorCode::kProtocol,
                            "expected signatures, receiver sent " +
                                std::string(frame_kind_name(frame.kind_case())));
        std::string& bytes = packed[frame.signature_chunk().content_id()];
        if (bytes.size() + frame.signature_chunk().data().size() > (size_t{1} << 30))
          return make_error(ErrorCode::kProtocol, "receiver's signature is too large");
        bytes += frame.signature_chunk().data();
      }
      for (size_t i = first; i < end; ++i) {
        Pending& p = pending[i];
        uint32_t id = p.candidate->content_id;
        auto it = packed.find(id);
        if (it == packed.end()) {  // the site sent none: the file goes whole
          p.candidate = nullptr;
          continue;
        }
        // Each arrives zstd-compressed.
        DS_ASSIGN_OR_RETURN(std::string signature,
                            with_context(zstd_decompress(it->second, size_t{1} << 30),
                                         "signature of basis content " + std::to_string(id)));
        auto& rounds = p.entry->rounds;
        rounds.push_back(SignatureRound{std::move(p.ask), std::move(signature)});
        DS_RETURN_IF_ERROR(with_context(p.entry->matched->add_round(rounds.back()),
                                        "signature of basis content " + std::to_string(id)));
        // Matching a large layer takes a while: keep the site's read
        // deadline from passing.
        if (std::chrono::steady_clock::now() - last_sent > kMatchingHeartbeat) {
          wire::SessionFrame beat;
          beat.mutable_progress()->set_phase("matching signatures");
          DS_RETURN_IF_ERROR(wire_->send(beat));
          last_sent = std::chrono::steady_clock::now();
        }
        if (auto next = rounds_allowed ? p.entry->matched->next_ask() : std::nullopt) {
          p.ask = std::move(*next);
          continue;
        }
        p.candidate = nullptr;  // done
      }
      first = end;
    }
    std::erase_if(pending, [](const Pending& p) { return p.candidate == nullptr; });
    if (round >= kMaxSignatureRounds) break;
  }
  return ok_status();
}

Status SiteSender::send_streams() {
  DS_ASSIGN_OR_RETURN(Effort effort, parse_effort(options_.effort));
  std::vector<const LayerIndex*> basis_layers;
  LayerFiles basis_files;
  if (local_) {
    if (local_basis_) {
      basis_layers = local_basis_->layers;
      basis_files = local_basis_->files;
    }
  } else {
    for (const auto& index : received_indexes_) basis_layers.push_back(index.get());
  }
  Basis basis = Basis::build(basis_layers, 32 << 20, digest_bytes_);
  uint64_t to_code = 0;
  for (uint32_t t : stream_set_) {
    if (stored_.count(t)) continue;
    to_code += source_.target_layer(t).value()->tar_size;
  }
  progress_.set_total_bytes(to_code);

  // Several sites with the same basis and nothing held or partial: code
  // once, send the spooled bytes to each.
  if (share_encoding_ && local_ && resume_at_.empty() && !options_.dry_run) {
    std::string key = "local:" + (local_basis_ ? local_basis_->image_id : std::string("none"));
    for (uint32_t t : stored_) key += ":" + std::to_string(t);
    auto streams = source_.spooled(key, [&](const fs::path& dir) {
      SpooledStreams out;
      progress_.phase("coding", "the layer streams (shared by the sites with this basis)");
      LayerStreamEncoder encoder(basis, basis_files,
                                 EncoderOptions{effort, std::max(1, options_.threads)});
      for (uint32_t t : stream_set_) {
        const LayerIndex& index = *source_.target_layer(t).value();
        if (stored_.count(t)) {
          encoder.skip_entries(index, 0, index.entries.size());
          continue;
        }
        SpooledLayer& layer = out.layers.emplace_back();
        layer.target_index = t;
        fs::path path = dir / (std::to_string(t) + ".stream");
        auto files = create_spool(path);
        if (!files) {
          out.status = std::unexpected(files.error());
          return out;
        }
        layer.spool = std::move(files->first);
        SpoolSegmentSink sink(layer, std::move(files->second), path);
        out.status =
            with_context(encoder.encode_segments(index, source_.fd(chain_[t]), 0,
                                                 options_.segment_bytes, sink, layer.stats),
                         "layer " + std::to_string(t + 1));
        if (!out.status) return out;
      }
      return out;
    });
    DS_RETURN_IF_ERROR(streams->status);
    summary_.shared_encoding = true;
    return send_spooled(*streams);
  }

  SignatureMap signatures;
  EncoderOptions encoder_options{effort, std::max(1, options_.threads),
                                 local_ ? nullptr : &signatures};
  encoder_options.on_progress = [&](uint64_t done) {
    progress_.layer_advanced(done, channel_->socket_bytes_sent(),
                             channel_->socket_bytes_received());
  };
  LayerStreamEncoder encoder(basis, basis_files, encoder_options);
  for (uint32_t t : stream_set_) {
    const LayerIndex& index = *source_.target_layer(t).value();
    int fd = source_.fd(chain_[t]);
    if (stored_.count(t)) {
      encoder.skip_entries(index, 0, index.entries.size());
      continue;
    }
    uint64_t first = 0;
    if (auto it = resume_at_.find(t); it != resume_at_.end()) {
      first = std::min<uint64_t>(it->second, index.entries.size());
      ++summary_.layers_resumed;
    }
    encoder.skip_entries(index, 0, first);
    if (!local_) {
      progress_.phase("signatures", "for layer " + std::to_string(t + 1));
      DS_RETURN_IF_ERROR(
          receive_signatures(encoder.delta_candidates(index, first), fd, signatures));
    }
    uint64_t first_byte =
        first > 0 && first <= index.entries.size()
            ? (first < index.entries.size() ? index.entries[first].payload_offset : index.tar_size)
            : 0;
    progress_.layer_started(t, static_cast<uint32_t>(chain_.size()), chain_[t].short_str(),
                            index.tar_size, first_byte);
    LayerStreamStats stats;
    if (options_.dry_run) {
      CountedSegmentSink sink(t);
      DS_RETURN_IF_ERROR(with_context(
          encoder.encode_segments(index, fd, first, options_.segment_bytes, sink, stats),
          "layer " + std::to_string(t + 1) + " (" + chain_[t].short_str() + ")"));
      counted_wire_bytes_ += sink.wire_bytes();
    } else {
      WireSegmentSink sink(*wire_, t);
      DS_RETURN_IF_ERROR(with_context(
          encoder.encode_segments(index, fd, first, options_.segment_bytes, sink, stats),
          "layer " + std::to_string(t + 1) + " (" + chain_[t].short_str() + ")"));
      spdlog::info(
          "{}: layer {} ({}): {} segments, {} entries, {} deltas, {} literal bytes, stream {}",
          site_, t + 1, chain_[t].short_str(), sink.segments(), stats.entries, stats.delta_files,
          stats.literal_bytes, stats.stream_bytes);
    }
    add_stats(report_for(t), stats);
    summary_.stream_bytes += stats.stream_bytes;
    ++summary_.layers_sent;
    progress_.layer_finished(stats.stream_bytes, channel_->socket_bytes_sent(),
                             channel_->socket_bytes_received());
  }
  return ok_status();
}

Status SiteSender::send_spooled(const SpooledStreams& streams) {
  std::vector<char> buffer(kDataChunkBytes);
  for (const SpooledLayer& layer : streams.layers) {
    const uint32_t t = layer.target_index;
    uint64_t layer_bytes = report_for(t).layer_bytes;
    uint64_t spool_total = 0;
    for (const auto& segment : layer.segments) spool_total += segment.length;
    progress_.layer_started(t, static_cast<uint32_t>(chain_.size()), chain_[t].short_str(),
                            layer_bytes, 0);
    WireSegmentSink sink(*wire_, t);
    uint64_t spool_done = 0;
    for (const auto& segment : layer.segments) {
      DS_ASSIGN_OR_RETURN(ByteSink * out, sink.begin_segment(segment.first_entry));
      FileSource source(layer.spool.get(), segment.offset, segment.length, "stream spool");
      uint64_t left = segment.length;
      while (left > 0) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
        DS_RETURN_IF_ERROR(
            read_exact(source, std::span<char>(buffer.data(), want), "stream spool"));
        DS_RETURN_IF_ERROR(out->write(std::string_view(buffer.data(), want)));
        left -= want;
        spool_done += want;
        progress_.layer_advanced(spool_total > 0 ? layer_bytes * spool_done / spool_total : 0,
                                 channel_->socket_bytes_sent(), channel_->socket_bytes_received());
      }
      DS_RETURN_IF_ERROR(sink.end_segment(segment.next_entry, segment.layer_done));
    }
    add_stats(report_for(t), layer.stats);
    summary_.stream_bytes += layer.stats.stream_bytes;
    ++summary_.layers_sent;
    progress_.layer_finished(layer.stats.stream_bytes, channel_->socket_bytes_sent(),
                             channel_->socket_bytes_received());
  }
  return ok_status();
}

Status SiteSender::commit() {
  const ImageInfo& info = source_.info();
  wire::SessionFrame commit_frame;
  auto& target = *commit_frame.mutable_commit()->mutable_target();
  for (const auto& tag : info.tags) target.add_tags(tag);
  if (!inventory_.has_image()) {
    // The config, coded on the basis config when both sides hold it.
    if (local_basis_ && !local_basis_->config_bytes.empty() && inventory_.basis_config_known() &&
        local_basis_->image_id == inventory_.basis().image_id()) {
      DS_ASSIGN_OR_RETURN(
          std::string coded,
          zstd_compress_with_prefix(info.config_bytes, local_basis_->config_bytes, 19));
      target.set_config_on_basis(coded);
    } else {
      DS_ASSIGN_OR_RETURN(std::string packed, zstd_compress(info.config_bytes, 19));
      target.set_config_zstd(packed);
    }
    target.set_distribution_zstd(source_.identity().encoded);
  }
  progress_.phase(options_.dry_run ? "asking" : "verifying",
                  options_.dry_run ? "the site to end the dry run" : "and loading on the site");
  DS_RETURN_IF_ERROR(wire_->send(commit_frame));
  DS_ASSIGN_OR_RETURN(wire::SessionFrame result,
                      wire_->expect(wire::SessionFrame::kResult, "receiver"));
  if (options_.dry_run) {
    if (!result.result().dry_run())
      return make_error(ErrorCode::kProtocol, "the site answered a dry run as a transfer");
    return ok_status();
  }
  if (!result.result().ok() || result.result().image_id() != info.image_id.str()) {
    return make_error(ErrorCode::kVerifyFailed, "the site reports " + result.result().image_id() +
                                                    ", not " + info.image_id.str() + ": " +
                                                    result.result().message());
  }
  summary_.site_engine_id = result.result().engine_image_id();
  summary_.site_image_store = result.result().image_store();
  summary_.identity_note = result.result().identity_note();
  summary_.site_socket_bytes_received = result.result().counters().socket_bytes_received();
  summary_.site_socket_bytes_sent = result.result().counters().socket_bytes_sent();
  summary_.index_bytes = result.result().counters().index_bytes();
  summary_.signature_bytes = result.result().counters().signature_bytes();
  return ok_status();
}

void SiteSender::finish_summary() {
  summary_.socket_bytes_sent = channel_->socket_bytes_sent();
  summary_.socket_bytes_received = channel_->socket_bytes_received();
  summary_.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
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

Result<std::vector<std::string>> read_sites_file(const std::string& path) {
  DS_ASSIGN_OR_RETURN(std::string text, read_small_file(path, 1 << 20));
  std::vector<std::string> sites;
  size_t start = 0;
  int line_number = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    auto not_space = [](char c) { return c != ' ' && c != '\t' && c != '\r'; };
    line.erase(line.begin(), std::find_if(line.begin(), line.end(), not_space));
    line.erase(std::find_if(line.rbegin(), line.rend(), not_space).base(), line.end());
    if (line.empty()) continue;
    if (!parse_host_port(line, kDefaultPort))
      return make_error(ErrorCode::kInvalidArgument, path + ":" + std::to_string(line_number) +
                                                         ": '" + line + "' is not HOST[:PORT]");
    sites.push_back(line);
  }
  if (sites.empty())
    return make_error(ErrorCode::kInvalidArgument,
                      path + ": no sites in the file (one HOST[:PORT] per line)");
  return sites;
}

std::vector<SiteOutcome> run_send_command(const SendCommandOptions& options, ProgressBoard& board) {
  std::vector<SiteOutcome> outcomes;
  std::vector<SiteProgress*> progress;
  for (const auto& site : options.sites) {
    outcomes.push_back(SiteOutcome{site, make_error(ErrorCode::kInternal, "not started")});
    progress.push_back(&board.site(site));
  }
  progress.front()->phase("exporting", options.image);
  auto source =
      SendSource::open(options.engine, options.image, options.require_same_id, options.platform,
                       sender_cache_dir(options.cache_dir), options.layer_cache_budget);
  if (!source) {
    for (auto& outcome : outcomes) outcome.summary = std::unexpected(source.error());
    return outcomes;
  }
  const bool share = options.sites.size() > 1;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < outcomes.size(); i = next++) {
      SiteSender sender(**source, options, options.sites[i], *progress[i], share);
      outcomes[i].summary = sender.run();
      // With several sites a failure shows as it happens; the error itself
      // is printed once, at the end (send_report.cpp).
      bool failed_among_several = !outcomes[i].summary && outcomes.size() > 1;
      progress[i]->finished(static_cast<bool>(outcomes[i].summary),
                            failed_among_several ? options.sites[i] + ": failed" : std::string());
    }
  };
  size_t threads = std::clamp<size_t>(options.parallel, 1, outcomes.size());
  std::vector<std::thread> pool;
  for (size_t i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  // What a site confirmed becomes a basis this machine keeps (a cache:
  // failing to keep it costs bytes later, never this run).
  bool confirmed =
      !options.dry_run && std::any_of(outcomes.begin(), outcomes.end(),
                                      [](const SiteOutcome& o) { return o.summary.has_value(); });
  if (confirmed) {
    if (Status kept = (*source)->remember_sent(); !kept)
      spdlog::warn("layer cache: {}", kept.error().message());
  }
  return outcomes;
}

}  // namespace deltasync
