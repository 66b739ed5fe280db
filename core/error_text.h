#pragma once
// The message of any exception, as moe-lab shows it: LibTorch's errors (c10::Error) without
// the C++ backtrace their what() appends, everything else (ConfigError included) as is.
// One catch (std::exception) then serves every caller that reports an error.
#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace moe {

inline std::string error_text(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e)) {
    return torch_error->what_without_backtrace();
  }
  return e.what();
}

}  // namespace moe
