// Command-line glue both programs need: CLI11 lets a config-file key win
// over an option's environment variable, while our order is the command
// line, then the environment, then the config file. After parsing, each
// program applies the variables again with prefer_environment().
// Pure functions; thread-safe.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

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

}  // namespace deltasync
