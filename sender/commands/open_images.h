// Opens the images named on a command line: parses each reference and, only
// when one of them lives in an engine, connects to the engine (so archive-only
// commands work on machines without one).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"
#include "common/image/image.h"

namespace deltasync {

class ImageOpener {
 public:
  // `platform` ("linux/arm64"; empty: this host's) picks one image of a
  // multi-platform index, for every image this opener opens.
  explicit ImageOpener(std::string engine_flag, std::string platform = "")
      : engine_flag_(std::move(engine_flag)), platform_(std::move(platform)) {}
  Result<std::unique_ptr<ImageReader>> open(const std::string& reference);
  // The engine client, created on first use.
  Result<EngineClient*> engine();

 private:
  std::string engine_flag_;
  std::string platform_;
  std::unique_ptr<EngineClient> engine_;
};

}  // namespace deltasync
