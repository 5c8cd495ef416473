// Status and Result: the one error scheme of MMSB.
//
// A Status is either OK (a null pointer: cheap to return on hot paths) or an
// error code with a message that says what went wrong, where (page, epoch,
// offset, file) and what the caller can do about it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace mmsb {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,  // malformed input: empty delta, unsorted ranges, bad size
  kNotFound,         // unknown page id or name
  kOutOfRange,       // bytes past the end of a page
  kConflict,         // delta base version != page version
  kAlreadyExists,    // duplicate page name, existing dependency edge
  kCycle,            // a dependency edge that would close a cycle
  kLagged,           // a TLog consumer fell behind the ring; resync needed
  kResourceExhausted,// out of memory / address space / ring capacity
  kFailedPrecondition,// call not allowed in this state (e.g. from a callback)
  kCorruption,       // bad bytes on disk or in a buffer
  kIOError,          // the OS refused a read or write
  kUnsupported,      // e.g. a newer format major version
};

const char* code_name(Code c) noexcept;

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(Code code, std::string message)
      : rep_(code == Code::kOk ? nullptr
                               : std::make_unique<Rep>(Rep{code, std::move(message)})) {}
  Status(const Status& o) : rep_(o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr) {}
  Status& operator=(const Status& o) {
    if (this != &o) rep_ = o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() noexcept { return Status(); }

  bool ok() const noexcept { return rep_ == nullptr; }
  explicit operator bool() const noexcept { return ok(); }
  Code code() const noexcept { return rep_ ? rep_->code : Code::kOk; }
  // The message alone, without the code name ("" when OK).
  const std::string& message() const noexcept;
  // "Conflict: page 3 ..." -- for logs and the CLI.
  std::string to_string() const;

 private:
  struct Rep {
    Code code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

// Result<T>: a value or the Status that explains why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                   // NOLINT
  Result(Status status) : status_(std::move(status)) {            // NOLINT
    if (status_.ok()) status_ = Status(Code::kInvalidArgument, "Result built from an OK status");
  }
  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const Status& status() const noexcept { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace mmsb
