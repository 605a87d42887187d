// See engine_image_import.h. Only the layers the store lacks are copied
// (their index built on the way in); the export is still read front to
// back, since an engine's archive cannot be read from the middle.
#include "common/store/engine_image_import.h"

#include "common/image/image.h"

namespace deltasync {

namespace {

// Ends a copy with kCancelled once `cancel` is set.
class CancellableSource final : public ByteSource {
 public:
  CancellableSource(ByteSource& inner, const std::atomic<bool>* cancel)
      : inner_(inner), cancel_(cancel) {}
  Result<size_t> read(std::span<char> buffer) override {
    if (cancel_ != nullptr && cancel_->load())
      return make_error(ErrorCode::kCancelled, "stopped while copying a layer into the store");
    return inner_.read(buffer);
  }

 private:
  ByteSource& inner_;
  const std::atomic<bool>* cancel_;
};

}  // namespace

Result<EngineImageImport> import_engine_image(LayerStore& store, EngineClient& engine,
                                              const std::string& engine_id,
                                              const std::vector<Digest>& expected_chain,
                                              const std::atomic<bool>* cancel) {
  ImageRef ref;
  ref.transport = ImageRef::Transport::kEngine;
  ref.location = engine_id;
  ref.original = engine_id;
  DS_ASSIGN_OR_RETURN(auto image, open_image(ref, &engine));
  EngineImageImport out;
  out.chain = image->info().diff_ids();
  if (!expected_chain.empty() && out.chain != expected_chain)
    return make_error(ErrorCode::kEngine, "image " + engine_id + " changed meanwhile");
  out.config_digest = image->info().image_id;
  out.config = image->info().config_bytes;
  DS_RETURN_IF_ERROR(store.link_engine_image(engine_id, out.config_digest));
  for (size_t i = 0; i < out.chain.size(); ++i) {
    if (store.has(out.chain[i])) continue;
    DS_ASSIGN_OR_RETURN(auto opened, image->open_layer(i));
    CancellableSource source(*opened, cancel);
    DS_ASSIGN_OR_RETURN(StoredLayer layer,
                        store.import(source, out.chain[i],
                                     "layer " + std::to_string(i + 1) + " (" +
                                         out.chain[i].short_str() + ") of " + engine_id));
    ++out.layers_imported;
    out.bytes_imported += layer.size;
  }
  DS_RETURN_IF_ERROR(store.write_config(out.config_digest, out.config));
  return out;
}

}  // namespace deltasync
