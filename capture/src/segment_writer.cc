#include "mmsb/capture/segment_writer.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mmsb::capture {

namespace {
Status io_error(const std::filesystem::path& path, const std::string& what, int err) {
  std::string hint;
  if (err == ENOSPC) hint = "; free disk space -- frames written before this one are intact";
  if (err == EFBIG) hint = "; the file size limit was reached (ulimit -f) -- earlier frames are intact";
  if (err == EACCES || err == EPERM) hint = "; check the directory's permissions";
  return Status(Code::kIOError, path.string() + ": " + what + ": " + std::strerror(err) + hint);
}
}  // namespace

Result<std::unique_ptr<SegmentWriter>> SegmentWriter::create(const std::filesystem::path& path, uint32_t segment,
                                                            Epoch start_epoch) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(path, "cannot create segment", errno);
  std::unique_ptr<SegmentWriter> w(new SegmentWriter(path, fd));
  std::byte header[format::kFileHeaderBytes];
  format::encode(format::FileHeader{format::kMajor, format::kMinor, segment, start_epoch}, header);
  if (Status s = w->write_all(header, {}); !s.ok()) return s;
  return w;
}

SegmentWriter::~SegmentWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status SegmentWriter::write_all(std::span<const std::byte> a, std::span<const std::byte> b) {
  iovec iov[2] = {{const_cast<std::byte*>(a.data()), a.size()}, {const_cast<std::byte*>(b.data()), b.size()}};
  int first = 0;
  const size_t total = a.size() + b.size();
  size_t done = 0;
  while (done < total) {
    const ssize_t n = ::writev(fd_, iov + first, 2 - first);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(path_,
                      "writing " + std::to_string(total) + " bytes at offset " + std::to_string(size_) +
                          " failed after " + std::to_string(done),
                      errno);
    }
    done += static_cast<size_t>(n);
    // Partial write: skip what went out.
    for (size_t left = static_cast<size_t>(n); left > 0 && first < 2;) {
      const size_t take = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<std::byte*>(iov[first].iov_base) + take;
      iov[first].iov_len -= take;
      left -= take;
      if (iov[first].iov_len == 0) ++first;
    }
    while (first < 2 && iov[first].iov_len == 0) ++first;
  }
  size_ += done;
  return Status::OK();
}

Status SegmentWriter::append(format::FrameKind kind, Epoch first_epoch, Epoch last_epoch,
                             std::span<const std::byte> flatbuffer, format::Compressor& zstd) {
  if (fd_ < 0) return Status(Code::kFailedPrecondition, path_.string() + ": segment is closed");
  Result<std::span<const std::byte>> compressed = zstd.compress(flatbuffer);
  if (!compressed.ok()) return compressed.status();
  const std::span<const std::byte> payload = *compressed;
  const format::FrameHeader h = format::make_header(kind, first_epoch, last_epoch, flatbuffer.size(), payload);
  std::byte header[format::kFrameHeaderBytes];
  format::encode(h, header);
  const uint64_t offset = size_;
  // Header and payload in one writev: one syscall per frame, no copy.
  if (Status s = write_all(header, payload); !s.ok()) return s;
  index_.push_back(format::IndexEntry{offset, first_epoch, last_epoch, kind});
  by_kind_[static_cast<int>(kind)] += size_ - offset;
  return Status::OK();
}

Status SegmentWriter::sync() {
  if (fd_ >= 0 && ::fdatasync(fd_) != 0) return io_error(path_, "fdatasync failed", errno);
  return Status::OK();
}

Status SegmentWriter::close(Epoch last_delta_epoch, bool last_segment, format::Compressor& zstd, bool sync_file) {
  if (fd_ < 0) return Status::OK();
  std::vector<std::byte> end;
  const uint64_t index_offset = size_;
  Status s = format::segment_end(index_, index_offset, last_delta_epoch, last_segment, zstd, &end);
  if (s.ok()) s = write_all(end, {});
  if (s.ok()) by_kind_[static_cast<int>(format::FrameKind::kIndex)] += size_ - index_offset;
  if (s.ok() && sync_file) s = sync();
  ::close(fd_);
  fd_ = -1;
  return s;
}

}  // namespace mmsb::capture
