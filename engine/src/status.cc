#include "mmsb/status.h"

namespace mmsb {

const char* code_name(Code c) noexcept {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "Invalid argument";
    case Code::kNotFound: return "Not found";
    case Code::kOutOfRange: return "Out of range";
    case Code::kConflict: return "Conflict";
    case Code::kAlreadyExists: return "Already exists";
    case Code::kCycle: return "Cycle";
    case Code::kLagged: return "Lagged";
    case Code::kResourceExhausted: return "Resource exhausted";
    case Code::kFailedPrecondition: return "Failed precondition";
    case Code::kCorruption: return "Corruption";
    case Code::kIOError: return "I/O error";
    case Code::kUnsupported: return "Unsupported";
  }
  return "Unknown";
}

const std::string& Status::message() const noexcept {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(code_name(rep_->code)) + ": " + rep_->message;
}

}  // namespace mmsb
