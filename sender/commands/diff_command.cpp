#include "sender/commands/diff_command.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/index/image_indexer.h"
#include "sender/commands/open_images.h"
#include "sender/diff/image_diff.h"

namespace deltasync {

Status run_diff_command(const DiffCommandOptions& options) {
  ImageOpener opener(options.engine);
  DS_ASSIGN_OR_RETURN(auto old_image, opener.open(options.old_image));
  DS_ASSIGN_OR_RETURN(auto new_image, opener.open(options.new_image));

  LayerIndexCache cache;
  DS_ASSIGN_OR_RETURN(auto old_layers, cache.all(*old_image));
  DS_ASSIGN_OR_RETURN(auto new_layers, cache.all(*new_image));
  spdlog::debug("indexed {} distinct layers, {} bytes", cache.layers_read(), cache.bytes_read());

  ImageTree old_tree = build_image_tree(old_layers);
  ImageTree new_tree = build_image_tree(new_layers);
  DiffOptions diff_options;
  diff_options.include_directory_mtime = options.include_directory_mtime;
  ImageDiff diff = diff_image_trees(old_tree, new_tree, diff_options);

  if (options.json) {
    nlohmann::json out = diff_to_json(diff);
    out["old"] = {{"image", options.old_image}, {"id", old_image->info().image_id.str()}};
    out["new"] = {{"image", options.new_image}, {"id", new_image->info().image_id.str()}};
    size_t shared = 0;
    for (const auto* layer : new_layers) {
      for (const auto* base : old_layers) {
        if (base->diff_id == layer->diff_id) {
          ++shared;
          break;
        }
      }
    }
    out["layers"] = {{"old", old_layers.size()}, {"new", new_layers.size()}, {"shared", shared}};
    std::string text = out.dump(2);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
  } else {
    std::string text = format_diff_text(diff, options.summary_only);
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  return ok_status();
}

}  // namespace deltasync
