#include "receiver/service/session.h"

#include <malloc.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <set>

#include <spdlog/spdlog.h>

#include "common/codec/compression.h"
#include "common/delta/block_delta.h"
#include "common/engine/engine_client.h"
#include "common/image/image.h"
#include "common/index/index_codec.h"
#include "common/layerstream/layer_stream.h"
#include "common/load/image_loader.h"
#include "common/protocol/distribution_codec.h"
#include "common/protocol/signature_ask_codec.h"
#include "common/protocol/wire_channel.h"
#include "receiver/service/basis_choice.h"

namespace deltasync {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kHeartbeat = std::chrono::seconds(5);

Result<std::vector<Digest>> parse_chain(const google::protobuf::RepeatedPtrField<std::string>& list,
                                        std::string_view what) {
  std::vector<Digest> out;
  for (const auto& text : list) {
    auto d = Digest::parse(text);
    if (!d) return make_error(ErrorCode::kProtocol, std::string(what) + ": " + d.error().message());
    out.push_back(*d);
  }
  return out;
}

class Session {
 public:
  Session(FrameChannel& channel, ServiceState& state)
      : channel_(channel), wire_(channel), state_(state), started_(Clock::now()) {
    id_ = "s" + std::to_string(state.next_session_id++);
    log_prefix_ = "[" + id_ + " " + channel.peer_name() + "@" + channel.peer_address() + "] ";
  }

  void run() {
    Status status = run_steps();
    if (!status && status.error().code() == ErrorCode::kNoSpace)
      status = with_context(std::move(status),
                            "the site's store " + state_.store->root().string() + " is full");
    if (!status) {
      const Error& error = status.error();
      // Decided by the connection, not the code: an engine that cannot be
      // reached is kUnavailable too, and the sender must hear of it.
      if (wire_.failed()) {
        spdlog::warn("{}session ended: {}", log_prefix_, error.message());
      } else {
        spdlog::error("{}session failed: {}", log_prefix_, error.message());
        wire_.send_error(error);
      }
      if (!image_id_.is_zero()) {
        state_.record_transfer(target_name() + " from " + channel_.peer_name() +
                               ": failed: " + error.message());
      }
    }
    for (const auto& d : pinned_) state_.store->unpin(d);
    (void)state_.store->enforce_budget();
    // A session's buffers (frames, zstd and librsync state, the decoder's
    // tables) are freed now, but glibc keeps freed memory in its per-thread
    // arenas; give it back, so that a burst of concurrent sessions does not
    // leave the service at its peak size for good (bench/run-soak.sh).
    ::malloc_trim(0);
  }

 private:
  std::string target_name() const {
    return reference_.empty() ? image_id_.short_str() : reference_;
  }

  // Runs `work` on a helper thread, sending heartbeats meanwhile.
  template <class T>
  Result<T> with_heartbeat(const std::string& phase, std::function<Result<T>()> work) {
    auto future = std::async(std::launch::async, std::move(work));
    while (future.wait_for(kHeartbeat) != std::future_status::ready) {
      wire::SessionFrame frame;
      frame.mutable_progress()->set_phase(phase);
      (void)wire_.send(frame);
    }
    return future.get();
  }

  Status run_steps() {
    DS_ASSIGN_OR_RETURN(wire::SessionFrame first, wire_.receive());
    if (first.has_status_request()) return answer_status();
    if (!first.has_hello())
      return make_error(ErrorCode::kProtocol, "session: expected Hello, peer sent " +
                                                  std::string(frame_kind_name(first.kind_case())));
    const wire::Hello& hello = first.hello();
    if (hello.protocol_version() != kProtocolVersion) {
      return make_error(ErrorCode::kUnsupported,
                        "this receiver speaks protocol version " +
                            std::to_string(kProtocolVersion) + ", the sender " +
                            std::to_string(hello.protocol_version()) +
                            ": install the same deltasync version on both sides");
    }
    DS_ASSIGN_OR_RETURN(chain_, parse_chain(hello.target().diff_ids(), "Hello diff_ids"));
    {
      DS_ASSIGN_OR_RETURN(image_id_,
                          with_context(Digest::parse(hello.target().image_id()), "Hello image_id"));
    }
    if (chain_.empty() || chain_.size() > 1000)
      return make_error(ErrorCode::kProtocol, "Hello: the image must have 1..1000 layers");
    reference_ = hello.reference();
    tags_.assign(hello.target().tags().begin(), hello.target().tags().end());
    spdlog::info("{}wants {} ({}, {} layers)", log_prefix_, target_name(), image_id_.str(),
                 chain_.size());

    // One transfer per image at a time: a second sender of the same image
    // waits, then finds it loaded.
    auto lock = state_.image_locks.lock(
        image_id_.str(),
        [&] {
          wire::SessionFrame frame;
          frame.mutable_progress()->set_phase("waiting for another transfer of this image");
          (void)wire_.send(frame);
        },
        kHeartbeat);

    EngineClient engine(EngineOptions{state_.engine_address});
    DS_RETURN_IF_ERROR(with_context(engine.ping(), "the site's engine"));
    DS_ASSIGN_OR_RETURN(EngineInfo engine_info, with_context(engine.info(), "the site's engine"));
    every_layer_in_archive_ = engine_info.store == ImageStoreKind::kContainerd;
    site_store_ = engine_info.describe();
    auto config_digest_of = [&](const std::string& engine_id) -> std::optional<std::string> {
      if (!every_layer_in_archive_) return engine_id;
      if (auto linked = state_.store->config_of_engine_image(engine_id)) return linked->str();
      return std::nullopt;
    };
    DS_ASSIGN_OR_RETURN(choice_, choose_basis(engine, chain_, image_id_.str(), tags_,
                                              config_digest_of, every_layer_in_archive_));

    wire::SessionFrame inventory_frame;
    wire::Inventory& inventory = *inventory_frame.mutable_inventory();
    inventory.set_protocol_version(kProtocolVersion);
    inventory.set_receiver_version("deltarecvd 0.1");
    inventory.set_signature_rounds(true);
    inventory.set_has_image(choice_.has_image);
    inventory.set_engine_layers(static_cast<uint32_t>(choice_.engine_layers));
    if (choice_.has_image) {
      DS_RETURN_IF_ERROR(wire_.send(inventory_frame));
      return finish_known_image(engine, hello);
    }
    // The basis: from the store, or exported from the engine once.
    if (!choice_.engine_id.empty()) {
      auto prepared =
          with_heartbeat<bool>("reading the basis from the engine", [&]() -> Result<bool> {
            Status status = prepare_basis();
            if (!status) return std::unexpected(status.error());
            return true;
          });
      if (!prepared) return std::unexpected(std::move(prepared).error());
      for (const auto& d : choice_.chain) inventory.mutable_basis()->add_diff_ids(d.str());
      inventory.mutable_basis()->set_image_id(choice_.image_id);
      inventory.mutable_basis()->set_reference(choice_.reference);
      inventory.set_basis_config_known(basis_config_.has_value());
    }
    // After the basis is in the store: a target layer may be one of its
    // layers. The sender and this session both go by this snapshot (another
    // session may add layers to the store meanwhile).
    for (size_t i = choice_.engine_layers; i < chain_.size(); ++i) {
      if (state_.store->has(chain_[i])) {
        inventory.add_stored_layers(static_cast<uint32_t>(i));
        stored_at_inventory_.insert(chain_[i]);
        state_.store->pin(chain_[i]);
        pinned_.push_back(chain_[i]);
      } else if (auto checkpoint = state_.store->read_checkpoint(image_id_, chain_[i])) {
        auto* partial = inventory.add_partial();
        partial->set_target_index(static_cast<uint32_t>(i));
        partial->set_entries_done(checkpoint->entries);
        partial->set_tar_bytes(checkpoint->tar_bytes);
      }
    }
    DS_RETURN_IF_ERROR(wire_.send(inventory_frame));

    DS_ASSIGN_OR_RETURN(wire::SessionFrame plan_frame,
                        wire_.expect(wire::SessionFrame::kPlan, "session"));
    const wire::Plan& plan = plan_frame.plan();
    remote_ = plan.mode() == wire::Plan::REMOTE;
    size_t digest_bytes = 32;
    if (remote_) {
      digest_bytes = plan.index_digest_bytes();
      if (digest_bytes < 8 || digest_bytes > 32)
        return make_error(ErrorCode::kProtocol, "Plan: index digest bytes must be 8..32");
      DS_RETURN_IF_ERROR(send_basis_indexes(plan, digest_bytes));
    }
    std::vector<const LayerIndex*> indexes;
    for (const auto& layer : basis_layers_) indexes.push_back(layer.index.get());
    basis_ = std::make_unique<Basis>(Basis::build(indexes, 32 << 20, digest_bytes));
    for (const auto& layer : basis_layers_) basis_files_.fds.push_back(layer.fd.get());
    decoder_ = std::make_unique<LayerStreamDecoder>(*basis_, basis_files_);

    if (hello.dry_run()) return answer_dry_run();
    DS_RETURN_IF_ERROR(receive_layers(plan));
    return commit(engine);
  }

  Status answer_status() {
    wire::SessionFrame frame;
    auto& reply = *frame.mutable_status_reply();
    reply.set_receiver_version("deltarecvd 0.1");
    reply.set_engine(state_.engine_address);
    reply.set_store_bytes(state_.store->bytes_used());
    reply.set_store_budget(state_.store->budget());
    reply.set_stored_layers(static_cast<uint32_t>(state_.store->layer_count()));
    reply.set_active_sessions(state_.active_sessions.load());
    for (const auto& line : state_.recent_transfers()) reply.add_recent(line);
    for (const auto& line : state_.polls()) reply.add_watching(line);
    reply.set_indexer(state_.indexer());
    reply.set_session_exports(state_.basis_imports.exports(BasisImports::Who::kSession));
    reply.set_indexer_exports(state_.basis_imports.exports(BasisImports::Who::kIndexer));
    EngineClient engine(EngineOptions{state_.engine_address});
    reply.set_engine_ok(static_cast<bool>(engine.ping()));
    if (auto info = engine.info()) reply.set_image_store(info->describe());
    if (reply.engine_ok()) {
      if (auto images = engine.list_images()) {
        for (const auto& image : *images) {
          auto* out = reply.add_images();
          out->set_image_id(image.id);
          if (auto config = state_.store->config_of_engine_image(image.id)) {
            out->set_image_id(config->str());
            out->set_engine_image_id(image.id);
          }
          for (const auto& tag : image.repo_tags)
            if (tag != "<none>:<none>") out->add_tags(tag);
          if (auto detail = engine.inspect_image(image.id)) {
            std::vector<Digest> chain;
            for (const auto& text : detail->diff_ids)
              if (auto d = Digest::parse(text)) chain.push_back(*d);
            if (chain.size() == detail->diff_ids.size())
              out->set_in_store(BasisImports::held(*state_.store, image.id, chain).has_value());
          }
        }
      }
    }
    return wire_.send(frame);
  }

  Status finish_known_image(EngineClient& engine, const wire::Hello& hello) {
    DS_ASSIGN_OR_RETURN(wire::SessionFrame commit_frame,
                        wire_.expect(wire::SessionFrame::kCommit, "session"));
    tags_.assign(commit_frame.commit().target().tags().begin(),
                 commit_frame.commit().target().tags().end());
    // A dry run goes as far as the Commit, so that it moves the frames the
    // real run will (its estimate is what it moved), and changes nothing.
    if (hello.dry_run()) return send_result(/*dry_run=*/true);
    for (const auto& tag : commit_frame.commit().target().tags())
      DS_RETURN_IF_ERROR(engine.tag_image(choice_.target_engine_id, tag));
    state_.store->drop_partial(image_id_);  // left by a session killed after its load
    spdlog::info("{}{} is already loaded; tags applied", log_prefix_, target_name());
    state_.record_transfer(target_name() + " from " + channel_.peer_name() +
                           ": already loaded, tags applied");
    return send_result();
  }

  Status prepare_basis() {
    std::vector<size_t> missing;
    for (size_t i = 0; i < choice_.chain.size(); ++i) {
      state_.store->pin(choice_.chain[i]);
      pinned_.push_back(choice_.chain[i]);
      if (!state_.store->has(choice_.chain[i])) missing.push_back(i);
    }
    if (!choice_.image_id.empty()) {
      DS_ASSIGN_OR_RETURN(Digest basis_id, Digest::parse(choice_.image_id));
      basis_config_ = state_.store->read_config(basis_id);
    }
    if (!missing.empty() || !basis_config_) {
      // Through BasisImports: when the background indexer is importing this
      // image, wait for it rather than export it a second time.
      EngineClient engine(EngineOptions{state_.engine_address});
      DS_ASSIGN_OR_RETURN(
          BasisImports::Outcome got,
          state_.basis_imports.ensure(
              *state_.store, engine, choice_.engine_id, choice_.chain, BasisImports::Who::kSession,
              [&] {
                spdlog::info("{}waiting for the indexer's import of basis {} ({})", log_prefix_,
                             choice_.reference, choice_.engine_id);
              },
              [&] {
                spdlog::info("{}exporting basis {} ({}) from the engine", log_prefix_,
                             choice_.reference, choice_.engine_id);
              }));
      if (!choice_.image_id.empty() && choice_.image_id != got.config_digest.str())
        return make_error(ErrorCode::kEngine, "basis " + choice_.engine_id + " changed meanwhile");
      choice_.image_id = got.config_digest.str();
      basis_config_ = std::move(got.config);
    }
    for (const auto& d : choice_.chain) {
      DS_ASSIGN_OR_RETURN(StoredLayer layer, state_.store->open_layer(d));
      basis_layers_.push_back(std::move(layer));
    }
    return ok_status();
  }

  Status send_basis_indexes(const wire::Plan& plan, size_t digest_bytes) {
    for (uint32_t position : plan.index_layers()) {
      if (position >= basis_layers_.size())
        return make_error(ErrorCode::kProtocol, "Plan: basis layer out of range");
      DS_ASSIGN_OR_RETURN(std::string bytes,
                          encode_layer_index(*basis_layers_[position].index, digest_bytes));
      index_bytes_ += bytes.size();
      std::string_view rest = bytes;
      do {
        wire::SessionFrame frame;
        auto* chunk = frame.mutable_index_chunk();
        chunk->set_basis_layer(position);
        size_t take = std::min(rest.size(), kDataChunkBytes);
        chunk->set_data(std::string(rest.substr(0, take)));
        rest.remove_prefix(take);
        chunk->set_last(rest.empty());
        DS_RETURN_IF_ERROR(wire_.send(frame));
      } while (!rest.empty());
    }
    return ok_status();
  }

  Status answer_signatures(const wire::SignatureRequest& request) {
    if (!remote_) return make_error(ErrorCode::kProtocol, "SignatureRequest in a LOCAL session");
    if (static_cast<size_t>(request.items_size()) > basis_->contents().size())
      return make_error(ErrorCode::kProtocol, "SignatureRequest: more items than basis contents");
    for (const auto& item : request.items()) {
      if (item.content_id() >= basis_->contents().size())
        return make_error(ErrorCode::kProtocol, "SignatureRequest: content out of range");
      const BasisContent& c = basis_->contents()[item.content_id()];
      DS_ASSIGN_OR_RETURN(SignatureAsk ask, signature_ask_of(item, c.size));
      FileRangeRandomAccess basis_file(basis_files_.fds[c.layer], c.payload_offset, c.size);
      DS_ASSIGN_OR_RETURN(
          std::string signature,
          with_context(signature_of_ask(basis_file, ask),
                       "SignatureRequest for basis content " + std::to_string(item.content_id())));
      // Signatures of repetitive files (zero-filled, sparse) compress a lot.
      DS_ASSIGN_OR_RETURN(std::string packed, zstd_compress(signature, 3));
      signature_bytes_ += packed.size();
      std::string_view rest = packed;
      do {
        wire::SessionFrame frame;
        auto* chunk = frame.mutable_signature_chunk();
        chunk->set_content_id(item.content_id());
        size_t take = std::min(rest.size(), kDataChunkBytes);
        chunk->set_data(std::string(rest.substr(0, take)));
        rest.remove_prefix(take);
        chunk->set_last(rest.empty());
        DS_RETURN_IF_ERROR(wire_.send(frame));
      } while (!rest.empty());
    }
    wire::SessionFrame done;
    done.mutable_signatures_done();
    return wire_.send(done);
  }

  Status receive_layers(const wire::Plan& plan) {
    std::set<uint32_t> seen;
    for (uint32_t t : plan.layers()) {
      if (t >= chain_.size() || t < choice_.engine_layers || !seen.insert(t).second)
        return make_error(ErrorCode::kProtocol, "Plan: bad layer list");
      const Digest& diff_id = chain_[t];
      std::string name = "layer " + std::to_string(t + 1) + " (" + diff_id.short_str() + ")";
      state_.store->pin(diff_id);
      pinned_.push_back(diff_id);
      if (stored_at_inventory_.count(diff_id)) {
        DS_ASSIGN_OR_RETURN(StoredLayer stored, state_.store->open_layer(diff_id));
        decoder_->register_entries(*stored.index, stored.fd.get(), 0, stored.index->entries.size());
        ++layers_from_store_;
        kept_layers_.push_back(std::move(stored));
        continue;
      }
      DS_RETURN_IF_ERROR(with_context(receive_layer(t, diff_id, name), name));
    }
    return ok_status();
  }

  Status receive_layer(uint32_t t, const Digest& diff_id, const std::string& name) {
    auto checkpoint = state_.store->read_checkpoint(image_id_, diff_id).value_or(LayerCheckpoint{});
    auto path = state_.store->partial_file(image_id_, diff_id);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    int raw_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (raw_fd < 0) return std::unexpected(errno_error(errno, "open " + path.string()));
    UniqueFd fd(raw_fd);
    if (checkpoint.entries > 0) {
      // Entries already rebuilt can be referenced by later ones.
      FileSource prefix(fd.get(), 0, checkpoint.tar_bytes, "partial layer");
      auto index = build_layer_index(prefix, diff_id, "partial " + name);
      if (!index || index->entries.size() != checkpoint.entries) {
        state_.store->drop_partial(image_id_);
        return make_error(ErrorCode::kCorrupt,
                          "the partial copy kept from an earlier transfer is damaged and has been "
                          "removed; run the command again");
      }
      decoder_->register_entries(*index, fd.get(), 0, checkpoint.entries);
      spdlog::info("{}{}: resuming at entry {} ({} bytes kept)", log_prefix_, name,
                   checkpoint.entries, checkpoint.tar_bytes);
    }
    DS_ASSIGN_OR_RETURN(
        auto writer, RebuiltLayerWriter::open(fd.get(), checkpoint.tar_bytes, uint64_t{1} << 42));
    uint64_t kept_bytes = checkpoint.tar_bytes;
    Status received = receive_segments(t, diff_id, name, *writer, checkpoint.entries, kept_bytes);
    if (!received) {
      // Keep only what the last checkpoint covers: the next session would
      // cut the rest anyway, and on a full disk it holds the space needed.
      if (kept_bytes == 0)
        std::filesystem::remove(path, ec);
      else
        (void)::ftruncate(fd.get(), static_cast<off_t>(kept_bytes));
      return received;
    }
    Digest digest = writer->digest();
    if (digest != diff_id) {
      // Never keep or load it; the next attempt starts this layer afresh.
      std::filesystem::remove(path, ec);
      std::filesystem::remove(std::filesystem::path(path).replace_extension(".ckpt"), ec);
      return make_error(ErrorCode::kVerifyFailed,
                        "rebuilt layer hashes to " + digest.str() + ", not its diff_id");
    }
    rebuilt_bytes_ += writer->offset();
    ++layers_rebuilt_;
    DS_RETURN_IF_ERROR(state_.store->adopt_rebuilt(diff_id, path));
    std::filesystem::remove(std::filesystem::path(path).replace_extension(".ckpt"), ec);
    spdlog::info("{}{} rebuilt and verified ({} bytes)", log_prefix_, name, writer->offset());
    kept_fds_.push_back(std::move(fd));
    return ok_status();
  }

  // Receives segments from `entries` on until the layer is done, syncing and
  // checkpointing each; `kept_bytes` follows the last checkpoint.
  Status receive_segments(uint32_t t, const Digest& diff_id, const std::string& name,
                          RebuiltLayerWriter& writer, uint64_t entries, uint64_t& kept_bytes) {
    while (true) {
      DS_ASSIGN_OR_RETURN(wire::SessionFrame frame, wire_.receive());
      if (frame.has_progress()) continue;
      if (frame.has_signature_request()) {
        DS_RETURN_IF_ERROR(answer_signatures(frame.signature_request()));
        continue;
      }
      if (!frame.has_segment_begin())
        return make_error(
            ErrorCode::kProtocol,
            "expected SegmentBegin, peer sent " + std::string(frame_kind_name(frame.kind_case())));
      const auto& begin = frame.segment_begin();
      if (begin.target_index() != t || begin.first_entry() != entries) {
        return make_error(ErrorCode::kProtocol,
                          "segment starts at layer " + std::to_string(begin.target_index() + 1) +
                              " entry " + std::to_string(begin.first_entry()) +
                              ", expected entry " + std::to_string(entries));
      }
      DataFrameSource source(wire_);
      DS_ASSIGN_OR_RETURN(auto segment, decoder_->decode_segment(source, writer, entries, name));
      data_bytes_ += source.bytes();
      if (!source.ended()) {
        // The decoder stopped before SegmentEnd: read up to it.
        char probe;
        DS_ASSIGN_OR_RETURN(size_t extra, source.read(std::span<char>(&probe, 1)));
        if (extra != 0 || !source.ended())
          return make_error(ErrorCode::kCorrupt, "data after the end of a segment");
      }
      const auto& end = source.segment_end();
      if (end.target_index() != t || end.next_entry() != entries + segment.entries ||
          end.layer_done() != segment.layer_done) {
        return make_error(ErrorCode::kProtocol, "SegmentEnd does not match the segment's content");
      }
      entries += segment.entries;
      DS_RETURN_IF_ERROR(writer.sync());
      if (segment.layer_done) return ok_status();
      DS_RETURN_IF_ERROR(
          state_.store->write_checkpoint(image_id_, diff_id, {entries, writer.offset()}));
      kept_bytes = writer.offset();
    }
  }

  Status commit(EngineClient& engine) {
    DS_ASSIGN_OR_RETURN(wire::SessionFrame commit_frame,
                        wire_.expect(wire::SessionFrame::kCommit, "session"));
    const wire::ImageDescription& target = commit_frame.commit().target();
    std::string config = target.config();
    if (config.empty() && !target.config_zstd().empty()) {
      DS_ASSIGN_OR_RETURN(config, with_context(zstd_decompress(target.config_zstd(), 16 << 20),
                                               "Commit: image config"));
    } else if (config.empty()) {
      if (!basis_config_)
        return make_error(ErrorCode::kProtocol, "Commit: config coded on a basis we did not offer");
      DS_ASSIGN_OR_RETURN(
          config, with_context(zstd_decompress_with_prefix(target.config_on_basis(), *basis_config_,
                                                           16 << 20),
                               "Commit: image config"));
    }
    if (Digest::of(config) != image_id_)
      return make_error(ErrorCode::kVerifyFailed, "the image config does not hash to the image ID");
    DS_ASSIGN_OR_RETURN(auto config_chain, config_diff_ids(config));
    if (config_chain != chain_)
      return make_error(ErrorCode::kProtocol, "the config's layers differ from Hello's");
    tags_.assign(target.tags().begin(), target.tags().end());
    std::optional<DistributionIdentity> distribution;
    if (!target.distribution_zstd().empty()) {
      auto decoded = decode_distribution(target.distribution_zstd(), chain_);
      if (decoded) {
        distribution = std::move(*decoded);
      } else {
        identity_note_ =
            "the build host's distribution identity was not kept: " + decoded.error().message();
        spdlog::warn("{}{}", log_prefix_, identity_note_);
      }
    }
    std::vector<StoredLayer> opened;
    for (size_t i = choice_.engine_layers; i < chain_.size(); ++i) {
      if (!state_.store->has(chain_[i])) {
        return make_error(ErrorCode::kProtocol, "layer " + std::to_string(i + 1) + " (" +
                                                    chain_[i].short_str() +
                                                    ") was neither sent nor held here");
      }
    }
    spdlog::info("{}loading {} into the engine", log_prefix_, target_name());
    auto load = with_heartbeat<bool>("loading the image on the site", [&]() -> Result<bool> {
      EngineClient loader(EngineOptions{state_.engine_address});
      std::vector<StoredLayer> files;
      auto loaded = load_image_into_engine(
          loader, config, chain_, choice_.engine_layers,
          [&](const Digest& d) -> Result<LayerFileRef> {
            DS_ASSIGN_OR_RETURN(StoredLayer layer, state_.store->open_layer(d));
            LayerFileRef ref{layer.fd.get(), layer.size};
            files.push_back(std::move(layer));
            return ref;
          },
          tags_, LoadOptions{distribution ? &*distribution : nullptr, state_.store->tmp_dir()});
      if (!loaded) return std::unexpected(std::move(loaded).error());
      if (!loaded->identity_note.empty()) {
        identity_note_ = loaded->identity_note;
        spdlog::warn("{}{}", log_prefix_, identity_note_);
      }
      if (auto linked = state_.store->link_engine_image(loaded->engine_id, image_id_); !linked)
        spdlog::warn("{}{}", log_prefix_, linked.error().message());
      loaded_engine_id_ = loaded->engine_id;
      return true;
    });
    if (!load) {
      // Stopped, restarted or full meanwhile: every layer stays verified in
      // the store, so a rerun only loads.
      const Error& error = load.error();
      return make_error(error.code(), "loading " + target_name() +
                                          " into the site's engine: " + error.message() +
                                          "; what was received is kept on the site: once its "
                                          "engine works, run the same command again");
    }
    (void)state_.store->write_config(image_id_, config);
    state_.store->drop_partial(image_id_);
    double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    spdlog::info(
        "{}{} loaded and verified: {} layers rebuilt, {} from the store, {} in the "
        "engine; {} bytes received in {:.1f}s",
        log_prefix_, target_name(), layers_rebuilt_, layers_from_store_, choice_.engine_layers,
        channel_.socket_bytes_received(), seconds);
    state_.record_transfer(target_name() + " (" + image_id_.short_str() + ") from " +
                           channel_.peer_name() + ": loaded, " +
                           std::to_string(channel_.socket_bytes_received()) + " bytes received, " +
                           std::to_string(layers_rebuilt_) + " layers rebuilt");
    (void)engine;
    return send_result();
  }

  // A dry run: signatures on request until the sender's Commit, then a
  // result that says nothing was loaded.
  Status answer_dry_run() {
    while (true) {
      DS_ASSIGN_OR_RETURN(wire::SessionFrame frame, wire_.receive());
      if (frame.has_progress()) continue;
      if (frame.has_signature_request()) {
        DS_RETURN_IF_ERROR(answer_signatures(frame.signature_request()));
        continue;
      }
      if (!frame.has_commit())
        return make_error(ErrorCode::kProtocol,
                          "dry run: expected SignatureRequest or Commit, "
                          "peer sent " +
                              std::string(frame_kind_name(frame.kind_case())));
      spdlog::info("{}dry run of {} answered", log_prefix_, target_name());
      return send_result(/*dry_run=*/true);
    }
  }

  Status send_result(bool dry_run = false) {
    wire::SessionFrame frame;
    auto& result = *frame.mutable_result();
    result.set_ok(true);
    result.set_dry_run(dry_run);
    result.set_image_id(image_id_.str());
    std::string engine_id =
        loaded_engine_id_.empty() ? choice_.target_engine_id : loaded_engine_id_;
    if (!engine_id.empty() && engine_id != image_id_.str()) result.set_engine_image_id(engine_id);
    result.set_image_store(site_store_);
    result.set_identity_note(identity_note_);
    for (const auto& tag : tags_) result.add_tags(tag);
    auto& counters = *result.mutable_counters();
    counters.set_layers_rebuilt(layers_rebuilt_);
    counters.set_rebuilt_bytes(rebuilt_bytes_);
    counters.set_layers_from_store(layers_from_store_);
    counters.set_layers_in_engine(choice_.engine_layers);
    counters.set_signature_bytes(signature_bytes_);
    counters.set_index_bytes(index_bytes_);
    counters.set_seconds(std::chrono::duration<double>(Clock::now() - started_).count());
    // Counted before this frame goes out; the sender adds the result frame.
    counters.set_socket_bytes_received(channel_.socket_bytes_received());
    counters.set_socket_bytes_sent(channel_.socket_bytes_sent());
    return wire_.send(frame);
  }

  FrameChannel& channel_;
  WireChannel wire_;
  ServiceState& state_;
  Clock::time_point started_;
  std::string id_;
  std::string log_prefix_;
  Digest image_id_;
  bool every_layer_in_archive_ = false;  // the containerd image store
  std::string loaded_engine_id_;         // the engine's ID of what we loaded
  std::string identity_note_;            // why the build host's Id was not kept
  std::string site_store_;               // EngineInfo::describe() of the site's engine
  std::vector<Digest> chain_;
  std::string reference_;
  std::vector<std::string> tags_;
  BasisChoice choice_;
  std::optional<std::string> basis_config_;
  std::vector<StoredLayer> basis_layers_;
  std::vector<StoredLayer> kept_layers_;
  std::vector<UniqueFd> kept_fds_;
  std::vector<Digest> pinned_;
  std::set<Digest> stored_at_inventory_;
  std::unique_ptr<Basis> basis_;
  LayerFiles basis_files_;
  std::unique_ptr<LayerStreamDecoder> decoder_;
  bool remote_ = false;
  uint64_t layers_rebuilt_ = 0;
  uint64_t rebuilt_bytes_ = 0;
  uint64_t layers_from_store_ = 0;
  uint64_t signature_bytes_ = 0;
  uint64_t index_bytes_ = 0;
  uint64_t data_bytes_ = 0;
};

}  // namespace

void serve_session(FrameChannel& channel, ServiceState& state) {
  ++state.active_sessions;
  Session(channel, state).run();
  --state.active_sessions;
}

}  // namespace deltasync
