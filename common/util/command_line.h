// Command-line glue both programs need: CLI11 lets a config-file key win
// over an option's environment variable, while our order is the command
// line, then the environment, then the config file. After parsing, each
// program applies the variables again with prefer_environment().
// Pure functions; thread-safe.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace deltasync {

// Whether `flag` ("--cert") was given in argv, as "--cert X" or "--cert=X"
// (before any "--").
inline bool given_on_command_line(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == flag ||
        (arg.starts_with(flag) && arg.size() > flag.size() && arg[flag.size()] == '='))
      return true;
  }
  return false;
}

// Sets `value` from `variable` when that is set and `flag` was not given.
inline void prefer_environment(int argc, char** argv, std::string_view flag, const char* variable,
                               std::string& value) {
  const char* set = std::getenv(variable);
  if (set && *set && !given_on_command_line(argc, argv, flag)) value = set;
}

// The keys of the config file `app` read (its --config option, or that
// option's default when the file exists) that set no option of `app` (or,
// under a [section], of the subcommand of that name): typos CLI11 would
// otherwise ignore without a word. Unreadable files give none (CLI11 has
// already said why).
inline std::string config_file_path(CLI::App& app) {
  const CLI::Option* config = app.get_config_ptr();
  if (config == nullptr) return {};
  return config->count() > 0 ? config->as<std::string>() : config->get_default_str();
}

inline std::vector<std::string> unknown_config_keys(CLI::App& app) {
  std::vector<std::string> unknown;
  std::string path = config_file_path(app);
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec)) return unknown;
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigINI().from_file(path);
  } catch (const CLI::Error&) {
    return unknown;
  }
  for (const CLI::ConfigItem& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    CLI::App* scope = &app;
    for (const std::string& parent : item.parents) {
      try {
        scope = scope->get_subcommand(parent);
      } catch (const CLI::Error&) {
        scope = nullptr;
        break;
      }
    }
    bool known = scope != nullptr && (scope->get_option_no_throw("--" + item.name) != nullptr ||
                                      scope->get_option_no_throw(item.name) != nullptr);
    if (!known) {
      std::string key;
      for (const std::string& parent : item.parents) key += parent + ".";
      unknown.push_back(key + item.name);
    }
  }
  return unknown;
}

}  // namespace deltasync
