#include "sender/commands/open_images.h"

namespace deltasync {

Result<EngineClient*> ImageOpener::engine() {
  if (!engine_) {
    DS_ASSIGN_OR_RETURN(std::string address, resolve_engine_address(engine_flag_));
    engine_ = std::make_unique<EngineClient>(EngineOptions{address});
  }
  return engine_.get();
}

Result<std::unique_ptr<ImageReader>> ImageOpener::open(const std::string& reference) {
  DS_ASSIGN_OR_RETURN(ImageRef ref, ImageRef::parse(reference));
  ref.platform = platform_;
  EngineClient* client = nullptr;
  if (ref.is_engine()) {
    DS_ASSIGN_OR_RETURN(client, engine());
  }
  return open_image(ref, client);
}

}  // namespace deltasync
