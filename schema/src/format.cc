#include "mmsb/format.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "mmsb/fb/mmsb_tlog_generated.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace mmsb::format {
namespace {

template <class T>
void put(std::byte* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof v);
}
template <class T>
T get(const std::byte* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}

Status corrupt(const std::string& where, const std::string& what) {
  return Status(Code::kCorruption, where + ": " + what);
}

}  // namespace

const char* kind_name(FrameKind k) noexcept {
  switch (k) {
    case FrameKind::kMeta: return "meta";
    case FrameKind::kPageTable: return "pages";
    case FrameKind::kDeltas: return "deltas";
    case FrameKind::kSnapshot: return "snapshot";
    case FrameKind::kIndex: return "index";
  }
  return "unknown";
}

uint32_t checksum(std::span<const std::byte> bytes) noexcept {
  return static_cast<uint32_t>(XXH3_64bits(bytes.data(), bytes.size()));
}

// ---- file header: magic[8] u16 major u16 minor u32 segment u64 start_epoch
//      u32 reserved u32 checksum(bytes 0..27)
void encode(const FileHeader& h, std::byte* out) {
  std::memset(out, 0, kFileHeaderBytes);
  std::memcpy(out, kFileMagic, 8);
  put<uint16_t>(out, 8, h.major);
  put<uint16_t>(out, 10, h.minor);
  put<uint32_t>(out, 12, h.segment);
  put<uint64_t>(out, 16, h.start_epoch);
  put<uint32_t>(out, 28, checksum({out, 28}));
}

Status decode(std::span<const std::byte> in, FileHeader* h, const std::string& where) {
  if (in.size() < kFileHeaderBytes)
    return corrupt(where, "file is " + std::to_string(in.size()) + " bytes, shorter than a segment header (" +
                              std::to_string(kFileHeaderBytes) + ")");
  if (std::memcmp(in.data(), kFileMagic, 8) != 0)
    return corrupt(where, "not an MMSB recording segment (bad magic)");
  if (get<uint32_t>(in.data(), 28) != checksum(in.first(28)))
    return corrupt(where, "segment header checksum mismatch");
  h->major = get<uint16_t>(in.data(), 8);
  h->minor = get<uint16_t>(in.data(), 10);
  h->segment = get<uint32_t>(in.data(), 12);
  h->start_epoch = get<uint64_t>(in.data(), 16);
  // Only major version kMajor is read: a newer one may mean anything, and
  // 0 was never written.
  if (h->major != kMajor)
    return Status(Code::kUnsupported, where + ": recording format " + std::to_string(h->major) + "." +
                                          std::to_string(h->minor) +
                                          (h->major > kMajor ? " is newer than this reader (" : " is not one this reader (") +
                                          std::to_string(kMajor) + "." + std::to_string(kMinor) +
                                          (h->major > kMajor ? "); upgrade MMSB to read it"
                                                             : ") reads: it reads format " + std::to_string(kMajor) +
                                                                   ".x only"));
  return Status::OK();
}

// ---- frame header: magic[4] u8 kind u8 flags u16 header_bytes(40)
//      u32 payload_bytes u32 raw_bytes u64 first_epoch u64 last_epoch
//      u32 payload_checksum u32 header_checksum(bytes 0..35)
void encode(const FrameHeader& h, std::byte* out) {
  std::memcpy(out, kFrameMagic, 4);
  put<uint8_t>(out, 4, static_cast<uint8_t>(h.kind));
  put<uint8_t>(out, 5, h.flags);
  put<uint16_t>(out, 6, static_cast<uint16_t>(kFrameHeaderBytes));
  put<uint32_t>(out, 8, h.payload_bytes);
  put<uint32_t>(out, 12, h.raw_bytes);
  put<uint64_t>(out, 16, h.first_epoch);
  put<uint64_t>(out, 24, h.last_epoch);
  put<uint32_t>(out, 32, h.payload_checksum);
  put<uint32_t>(out, 36, checksum({out, 36}));
}

Status decode(std::span<const std::byte> in, FrameHeader* h, const std::string& where) {
  if (in.size() < kFrameHeaderBytes)
    return corrupt(where, "truncated frame header (" + std::to_string(in.size()) + " of " +
                              std::to_string(kFrameHeaderBytes) + " bytes)");
  if (std::memcmp(in.data(), kFrameMagic, 4) != 0) return corrupt(where, "no frame starts here (bad magic)");
  if (get<uint32_t>(in.data(), 36) != checksum(in.first(36))) return corrupt(where, "frame header checksum mismatch");
  if (get<uint16_t>(in.data(), 6) != kFrameHeaderBytes)
    return corrupt(where, "frame header size " + std::to_string(get<uint16_t>(in.data(), 6)) + " is not " +
                              std::to_string(kFrameHeaderBytes));
  // Kinds this reader does not know (added by a later minor version) decode
  // fine; readers skip them.
  const uint8_t kind = get<uint8_t>(in.data(), 4);
  if (kind == 0) return corrupt(where, "frame kind 0 is invalid");
  h->kind = static_cast<FrameKind>(kind);
  h->flags = get<uint8_t>(in.data(), 5);
  if ((h->flags & kFlagZstd) == 0)
    return corrupt(where, "frame flags " + std::to_string(h->flags) +
                              " lack bit 0 (a zstd payload), which every format 1.x frame has");
  h->payload_bytes = get<uint32_t>(in.data(), 8);
  h->raw_bytes = get<uint32_t>(in.data(), 12);
  h->first_epoch = get<uint64_t>(in.data(), 16);
  h->last_epoch = get<uint64_t>(in.data(), 24);
  h->payload_checksum = get<uint32_t>(in.data(), 32);
  if (h->payload_bytes > kMaxFrameBytes || h->raw_bytes > kMaxFrameBytes)
    return corrupt(where, "frame sizes out of bounds");
  if (h->first_epoch > h->last_epoch)
    return corrupt(where, "frame epoch range " + std::to_string(h->first_epoch) + ".." +
                              std::to_string(h->last_epoch) + " is reversed");
  return Status::OK();
}

// ---- trailer: magic[8] u64 index_offset u64 last_epoch u32 frames
//      u32 checksum(bytes 0..27)
std::string segment_file_name(uint32_t segment) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "seg-%06u.tlog", segment);
  return buf;
}

bool is_segment_file_name(std::string_view name) noexcept {
  if (name.size() != 15 || name.substr(0, 4) != "seg-" || name.substr(10) != ".tlog") return false;
  for (char c : name.substr(4, 6))
    if (c < '0' || c > '9') return false;
  return true;
}

FrameHeader make_header(FrameKind kind, uint64_t first_epoch, uint64_t last_epoch, size_t raw_bytes,
                        std::span<const std::byte> payload) {
  FrameHeader h;
  h.kind = kind;
  h.payload_bytes = static_cast<uint32_t>(payload.size());
  h.raw_bytes = static_cast<uint32_t>(raw_bytes);
  h.first_epoch = first_epoch;
  h.last_epoch = last_epoch;
  h.payload_checksum = checksum(payload);
  return h;
}

Status segment_end(std::span<const IndexEntry> frames, uint64_t index_offset, uint64_t last_delta_epoch,
                   bool last_segment, Compressor& zstd, std::vector<std::byte>* out) {
  flatbuffers::FlatBufferBuilder fbb(64 + frames.size() * sizeof(fb::FrameEntry));
  std::vector<fb::FrameEntry> entries;
  entries.reserve(frames.size());
  for (const IndexEntry& e : frames)
    entries.emplace_back(e.offset, e.first_epoch, e.last_epoch, static_cast<uint8_t>(e.kind));
  auto idx = fb::CreateSegmentIndex(fbb, fbb.CreateVectorOfStructs(entries), last_segment);
  fbb.Finish(fb::CreateFrame(fbb, fb::Body::SegmentIndex, idx.Union()), fb::FrameIdentifier());
  Result<std::span<const std::byte>> payload =
      zstd.compress({reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()});
  if (!payload.ok()) return payload.status();
  const size_t at = out->size();
  out->resize(at + kFrameHeaderBytes + payload->size() + kTrailerBytes);
  encode(make_header(FrameKind::kIndex, 0, 0, fbb.GetSize(), *payload), out->data() + at);
  std::memcpy(out->data() + at + kFrameHeaderBytes, payload->data(), payload->size());
  encode(Trailer{index_offset, last_delta_epoch, static_cast<uint32_t>(frames.size())},
         out->data() + at + kFrameHeaderBytes + payload->size());
  return Status::OK();
}

void encode(const Trailer& t, std::byte* out) {
  std::memcpy(out, kTrailerMagic, 8);
  put<uint64_t>(out, 8, t.index_offset);
  put<uint64_t>(out, 16, t.last_epoch);
  put<uint32_t>(out, 24, t.frames);
  put<uint32_t>(out, 28, checksum({out, 28}));
}

Status decode(std::span<const std::byte> in, Trailer* t, const std::string& where) {
  if (in.size() < kTrailerBytes) return corrupt(where, "too short for a trailer");
  if (std::memcmp(in.data(), kTrailerMagic, 8) != 0) return corrupt(where, "no trailer (bad magic)");
  if (get<uint32_t>(in.data(), 28) != checksum(in.first(28))) return corrupt(where, "trailer checksum mismatch");
  t->index_offset = get<uint64_t>(in.data(), 8);
  t->last_epoch = get<uint64_t>(in.data(), 16);
  t->frames = get<uint32_t>(in.data(), 24);
  return Status::OK();
}

// ---- zstd
Compressor::Compressor(int level) : ctx_(ZSTD_createCCtx()), level_(level) {
  ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(ctx_), ZSTD_c_compressionLevel, level_);
}
Compressor::~Compressor() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(ctx_)); }

Result<std::span<const std::byte>> Compressor::compress(std::span<const std::byte> in) {
  const size_t bound = ZSTD_compressBound(in.size());
  if (out_.size() < bound) out_.resize(bound);
  const size_t n = ZSTD_compress2(static_cast<ZSTD_CCtx*>(ctx_), out_.data(), out_.size(), in.data(), in.size());
  if (ZSTD_isError(n))
    return Status(Code::kInvalidArgument, std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  return std::span<const std::byte>(out_.data(), n);
}

Decompressor::Decompressor() : ctx_(ZSTD_createDCtx()) {}
Decompressor::~Decompressor() { ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(ctx_)); }

Status Decompressor::decompress(std::span<const std::byte> in, size_t raw_bytes, std::vector<std::byte>* out,
                                const std::string& where) {
  out->resize(raw_bytes);
  const size_t n = ZSTD_decompressDCtx(static_cast<ZSTD_DCtx*>(ctx_), out->data(), out->size(), in.data(), in.size());
  if (ZSTD_isError(n)) return corrupt(where, std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != raw_bytes)
    return corrupt(where, "payload decompressed to " + std::to_string(n) + " bytes, header says " +
                              std::to_string(raw_bytes));
  return Status::OK();
}

// ---- delta batches
void BatchBuilder::add(const DeltaView& d) {
  if (count_ == 0) first_epoch_ = d.epoch;
  if (d.cause != kNoCause) {
    derived_.push_back(count_);
    causes_.push_back(d.cause);
  }
  ++count_;
  pages_.push_back(d.page);
  max_page_ = std::max(max_page_, d.page);
  range_counts_.push_back(static_cast<uint32_t>(d.ranges.size()));
  if (d.ranges.size() != 1) multi_range_ = true;
  for (const Range& r : d.ranges) {
    offsets_.push_back(r.offset);
    lengths_.push_back(r.length);
    max_offset_ = std::max(max_offset_, r.offset);
    max_length_ = std::max(max_length_, r.length);
  }
  data_.insert(data_.end(), d.bytes.begin(), d.bytes.end());
}

void BatchBuilder::clear() {
  first_epoch_ = 0;
  count_ = 0;
  max_page_ = max_offset_ = max_length_ = 0;
  multi_range_ = false;
  pages_.clear();
  range_counts_.clear();
  offsets_.clear();
  lengths_.clear();
  derived_.clear();
  causes_.clear();
  data_.clear();
}

namespace {
// The narrowest copy of a column that holds its values: 8, 16 or 32 bits.
struct Column {
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> v8;
  flatbuffers::Offset<flatbuffers::Vector<uint16_t>> v16;
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> v32;
};
template <class T>
flatbuffers::Offset<flatbuffers::Vector<T>> narrow(flatbuffers::FlatBufferBuilder& fbb,
                                                   const std::vector<uint32_t>& v) {
  T* p;
  auto off = fbb.CreateUninitializedVector<T>(v.size(), &p);
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<T>(v[i]);
  return off;
}
Column column(flatbuffers::FlatBufferBuilder& fbb, const std::vector<uint32_t>& v, uint32_t max) {
  Column c{0, 0, 0};
  if (max <= 0xFF) c.v8 = narrow<uint8_t>(fbb, v);
  else if (max <= 0xFFFF) c.v16 = narrow<uint16_t>(fbb, v);
  else c.v32 = fbb.CreateVector(v);
  return c;
}
}  // namespace

void BatchBuilder::build(flatbuffers::FlatBufferBuilder& fbb) const {
  // Created first, the data vector ends up last in the buffer: the columns
  // sit together in front of it, so zstd sees like with like.
  auto data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(data_.data()), data_.size());
  auto lengths = column(fbb, lengths_, max_length_);
  auto offsets = column(fbb, offsets_, max_offset_);
  auto pages = column(fbb, pages_, max_page_);
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> counts = 0;
  if (multi_range_) counts = fbb.CreateVector(range_counts_);
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> derived = 0;
  flatbuffers::Offset<flatbuffers::Vector<uint64_t>> causes = 0;
  if (!derived_.empty()) {
    derived = fbb.CreateVector(derived_);
    causes = fbb.CreateVector(causes_);
  }
  auto batch = fb::CreateDeltaBatch(fbb, first_epoch_, count_, pages.v16, pages.v32, counts, offsets.v16,
                                    offsets.v32, lengths.v16, lengths.v32, data, derived, causes, pages.v8,
                                    offsets.v8, lengths.v8);
  fbb.Finish(fb::CreateFrame(fbb, fb::Body::DeltaBatch, batch.Union()), fb::FrameIdentifier());
}

namespace {
// Copies a column (exactly one of its 8/16/32-bit vectors present) into out.
template <class V8, class V16, class V32>
bool read_column(const V8* v8, const V16* v16, const V32* v32, std::vector<uint32_t>& out) {
  if ((v8 != nullptr) + (v16 != nullptr) + (v32 != nullptr) != 1) return false;
  out.clear();
  if (v8) out.assign(v8->begin(), v8->end());
  if (v16) out.assign(v16->begin(), v16->end());
  if (v32) out.assign(v32->begin(), v32->end());
  return true;
}
}  // namespace

Status BatchReader::open(const fb::DeltaBatch* b, const std::string& where) {
  if (!b) return corrupt(where, "frame holds no delta batch");
  first_epoch_ = b->first_epoch();
  count_ = b->count();
  if (count_ == 0) return corrupt(where, "empty delta batch");
  if (first_epoch_ == 0) return corrupt(where, "delta batch starts at epoch 0 (deltas start at 1)");
  std::vector<uint32_t>& offs = offsets_;
  std::vector<uint32_t>& lens = lengths_;
  if (!read_column(b->page8(), b->page16(), b->page32(), pages_) || pages_.size() != count_)
    return corrupt(where, "delta batch page column is missing or has the wrong length");
  if (!read_column(b->offset8(), b->offset16(), b->offset32(), offs) ||
      !read_column(b->length8(), b->length16(), b->length32(), lens) ||
      offs.size() != lens.size())
    return corrupt(where, "delta batch range columns are missing or disagree in length");
  range_start_.resize(count_ + 1);
  data_start_.resize(count_ + 1);
  const auto* counts = b->range_counts();
  if (counts && counts->size() != count_) return corrupt(where, "delta batch range_counts has the wrong length");
  uint64_t r = 0, bytes = 0;
  ranges_.resize(offs.size());
  for (uint32_t i = 0; i < count_; ++i) {
    range_start_[i] = static_cast<uint32_t>(r);
    data_start_[i] = bytes;
    const uint32_t n = counts ? counts->Get(i) : 1;
    if (n == 0 || r + n > offs.size())
      return corrupt(where, "delta " + std::to_string(first_epoch_ + i) + " has a bad range count");
    for (uint32_t k = 0; k < n; ++k, ++r) {
      ranges_[r] = Range{offs[r], lens[r]};
      bytes += lens[r];
    }
  }
  if (r != offs.size()) return corrupt(where, "delta batch has ranges that belong to no delta");
  range_start_[count_] = static_cast<uint32_t>(r);
  data_start_[count_] = bytes;
  const auto* data = b->data();
  if (!data || data->size() != bytes)
    return corrupt(where, "delta batch data has " + std::to_string(data ? data->size() : 0) +
                              " bytes but its ranges cover " + std::to_string(bytes));
  data_ = reinterpret_cast<const std::byte*>(data->data());
  causes_.assign(count_, 0);
  const auto* derived = b->derived();
  const auto* causes = b->causes();
  if ((derived == nullptr) != (causes == nullptr) || (derived && derived->size() != causes->size()))
    return corrupt(where, "delta batch derived/causes columns disagree");
  if (derived) {
    for (uint32_t k = 0; k < derived->size(); ++k) {
      const uint32_t i = derived->Get(k);
      const uint64_t c = causes->Get(k);
      if (i >= count_ || c == 0 || c >= first_epoch_ + i)
        return corrupt(where, "delta batch names an impossible cause (index " + std::to_string(i) + ", cause " +
                                  std::to_string(c) + ")");
      causes_[i] = c;
    }
  }
  return Status::OK();
}

DeltaView BatchReader::delta(uint32_t i) const noexcept {
  return DeltaView{pages_[i],
                   0,
                   first_epoch_ + i,
                   causes_[i],
                   std::span<const Range>(ranges_.data() + range_start_[i], range_start_[i + 1] - range_start_[i]),
                   std::span<const std::byte>(data_ + data_start_[i], data_start_[i + 1] - data_start_[i])};
}

// ---- DirLock ----

DirLock& DirLock::operator=(DirLock&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

namespace {

// Opens `dir` and takes flock(op) on it without waiting: the descriptor, or
// -1 with errno set (EWOULDBLOCK: another holder has it).
int lock_dir(const std::filesystem::path& dir, int op) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc;
  do rc = ::flock(fd, op | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc == 0) return fd;
  const int err = errno;
  ::close(fd);
  errno = err;
  return -1;
}

}  // namespace

Status DirLock::acquire(const std::filesystem::path& dir) {
  release();
  fd_ = lock_dir(dir, LOCK_EX);
  if (fd_ >= 0) return Status::OK();
  const int err = errno;
  if (err == EWOULDBLOCK)
    return Status(Code::kFailedPrecondition, dir.string() + " is being written: a running process holds its writer lock");
  if (err == ENOENT || err == ENOTDIR)
    return Status(Code::kIOError, "cannot open " + dir.string() + " to take its writer lock: " + std::strerror(err));
  // Unreadable, or a filesystem without flock (ENOLCK, EOPNOTSUPP): nothing
  // held (the lock is advisory).
  return Status::OK();
}

void DirLock::release() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);  // closing the last descriptor of the lock drops it
  fd_ = -1;
}

bool DirLock::held(const std::filesystem::path& dir) noexcept {
  const int fd = lock_dir(dir, LOCK_SH);
  if (fd < 0) return errno == EWOULDBLOCK;
  ::close(fd);
  return false;
}

}  // namespace mmsb::format
