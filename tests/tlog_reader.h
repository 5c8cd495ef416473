// tlogr: a small, independent reader of MMSB recordings, written from
// docs/FORMAT.md alone -- the reference the capture tests check the recorder
// against.
//
// It deliberately shares no code with capture/ or mmsb::format: byte layouts
// are decoded here with explicit little-endian loads, checksums come straight
// from xxHash, payloads from libzstd, and FlatBuffer fields through the
// flatc-generated accessors of schema/mmsb_tlog.fbs (the schema, not our code).
//
// What it does (FORMAT.md, "Crash safety and what readers do"):
//   - segments seg-NNNNNN.tlog in lexical order; each file header is checked
//     (magic, checksum, major version);
//   - frames are walked from offset 32; the first frame whose magic, header
//     checksum, header size, length or payload checksum is wrong ends the
//     readable part of that segment (a torn tail) and is never applied;
//   - a valid trailer's index frame is decoded and compared with the scan;
//     from format 1.1 on, only the last segment's index may say
//     last_segment (a marked segment with a successor is a problem);
//   - the durable history is every delta up to the last readable delta frame
//     whose epochs continue the previous ones without a gap;
//   - states are rebuilt from page tables, delta batches and (fuzzy)
//     snapshots exactly as FORMAT.md describes; versions are computed by
//     counting deltas per page, never read from the engine.
// Anything that passed its checksums but breaks a rule of FORMAT.md is a
// "problem": a bug of the writer, which the tests expect to be absent.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine_model.h"  // model::Run

namespace tlogr {

inline constexpr uint8_t kMeta = 1, kPageTable = 2, kDeltas = 3, kSnapshot = 4, kIndex = 5;
inline constexpr uint64_t kFileHeaderBytes = 32, kFrameHeaderBytes = 40, kTrailerBytes = 32;

// One readable frame (its header and payload passed every check).
struct Frame {
  size_t segment = 0;    // index into Recording::segments
  uint64_t offset = 0;   // of the frame header in the segment file
  uint8_t kind = 0;
  uint8_t flags = 0;
  uint32_t payload_bytes = 0;
  uint32_t raw_bytes = 0;
  uint64_t first_epoch = 0;
  uint64_t last_epoch = 0;
  uint64_t end() const { return offset + kFrameHeaderBytes + payload_bytes; }
  uint64_t bytes() const { return kFrameHeaderBytes + payload_bytes; }
};

// One delta of the durable history.
struct Delta {
  uint64_t epoch = 0;
  uint32_t page = 0;
  uint64_t cause = 0;  // 0: written by the application
  std::vector<model::Run> runs;
  std::vector<uint8_t> bytes;
  size_t frame = 0;  // index into Recording::frames
  // The page's version before this delta, computed by counting deltas per
  // page (from 0, or from the first complete snapshot when the recording
  // starts past epoch 0). Absent when the recording cannot tell.
  std::optional<uint64_t> base_version;
};

struct PageDecl {
  uint32_t id = 0;
  uint64_t size = 0;
  std::string name;
  uint64_t created_epoch = 0;
  size_t frame = 0;
};

struct SnapshotPart {
  uint32_t id = 0, part = 0, parts = 0, page_count = 0;
  uint64_t epoch = 0;  // the frame header's (== every `epochs` entry)
  std::vector<uint32_t> ids;
  std::vector<uint64_t> versions, epochs, sizes;
  std::vector<std::vector<uint8_t>> images;
  size_t frame = 0;
};

struct Snapshot {
  uint32_t id = 0;
  uint32_t parts = 0;
  uint32_t page_count = 0;
  std::vector<size_t> part_index;  // into Recording::parts, by part number (SIZE_MAX: missing)
  bool complete = false;           // every part readable
  uint64_t min_epoch = 0, max_epoch = 0;
};

struct Segment {
  std::filesystem::path path;
  std::string name;
  uint64_t file_size = 0;
  bool header_ok = false;
  uint16_t major = 0, minor = 0;
  uint32_t number = 0;
  uint64_t start_epoch = 0;
  uint64_t readable_end = 0;  // offset just past the last readable frame
  std::string stop;           // "" when the walk reached the end; else why it stopped (file, offset)
  bool has_trailer = false;   // a trailer with valid magic and checksum
  bool index_ok = false;      // trailer + index frame agree with the scan
  bool last_segment = false;  // the index frame's last_segment (format >= 1.1: the recording ends here)
  uint64_t trailer_index_offset = 0, trailer_last_epoch = 0;
  uint32_t trailer_frames = 0;
  size_t first_frame = 0, frame_count = 0;  // range in Recording::frames (index frame included)
  // Meta (first frame).
  bool has_meta = false;
  std::string program, host;
  uint32_t pid = 0;
  uint64_t start_time_ns = 0;
  uint32_t default_page_size = 0;
  std::map<std::string, std::string> labels;
  uint16_t meta_major = 0, meta_minor = 0;
  uint32_t meta_segment = 0;
  uint64_t meta_start_epoch = 0;
};

struct PageState {
  uint32_t id = 0;
  std::vector<uint8_t> bytes;
  uint64_t version = 0;
  std::string name;
  uint64_t created_epoch = 0;
};
using State = std::vector<PageState>;  // by page id; only pages that exist at the epoch

struct Recording {
  std::filesystem::path dir;
  std::string error;  // fatal: not a recording at all (no segments, bad first header, newer major)
  std::vector<Segment> segments;
  std::vector<Frame> frames;
  std::vector<PageDecl> pages;
  std::vector<Delta> deltas;  // the durable history; epochs start_epoch+1, +2, ...
  std::vector<SnapshotPart> parts;
  std::vector<Snapshot> snapshots;     // by id
  std::vector<std::string> problems;   // rule violations in frames that passed their checksums
  std::string gap;                     // set when a delta frame did not continue the history
  uint64_t start_epoch = 0;            // the first segment's start epoch
  uint64_t last_epoch = 0;             // epoch of the last durable delta (start_epoch if none)

  bool ok() const { return error.empty(); }
  // Every segment's walk reached its end (no torn/damaged frame anywhere).
  bool clean() const;
  // A one-paragraph description (segments, stops, problems) for INFO().
  std::string summary() const;

  // The state at epoch n. `snapshot`: -2 = the best available (the latest
  // complete snapshot whose greatest part epoch is <= n; from epoch 0 without
  // one when the recording starts at 0), -1 = from epoch 0 (only when the
  // recording starts at 0), k >= 0 = from complete snapshot k. nullopt (with
  // *why) when the recording cannot tell.
  std::optional<State> state_at(uint64_t n, int snapshot = -2, std::string* why = nullptr) const;
  // Checks every readable snapshot part (complete or not) against the state
  // rebuilt from the deltas at the part's epoch: images and versions.
  std::vector<std::string> verify_snapshots() const;
  // The frames of one kind, in file order.
  std::vector<Frame> frames_of(uint8_t kind) const;
};

Recording read_recording(const std::filesystem::path& dir);

// Helpers for tests: whole-file I/O.
std::vector<uint8_t> read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::vector<uint8_t>& bytes);
// The low 32 bits of XXH3-64, seed 0 (FORMAT.md's checksum).
uint32_t checksum(const uint8_t* p, size_t n);

}  // namespace tlogr

namespace tlogr {

// "" when `st` holds exactly the model's pages (size, bytes, version, name,
// creation epoch); otherwise the first difference. Pages the state has past
// the model's must have been created at `epoch` (after the model copy was
// taken at the same epoch) and still be zeros at version 0, unless
// `exact_count`.
inline std::string compare_state(const State& st, const std::vector<model::Page>& pages, uint64_t epoch,
                                 bool exact_count = false) {
  if (st.size() < pages.size() || (exact_count && st.size() != pages.size()))
    return "state has " + std::to_string(st.size()) + " pages, the model " + std::to_string(pages.size());
  for (size_t id = 0; id < st.size(); ++id) {
    const std::string p = "page " + std::to_string(id) + " at epoch " + std::to_string(epoch) + ": ";
    if (id >= pages.size()) {
      if (st[id].created_epoch != epoch || st[id].version != 0 ||
          std::any_of(st[id].bytes.begin(), st[id].bytes.end(), [](uint8_t b) { return b != 0; }))
        return p + "not in the model";
      continue;
    }
    const model::Page& m = pages[id];
    if (st[id].bytes.size() != m.bytes.size())
      return p + "size " + std::to_string(st[id].bytes.size()) + " want " + std::to_string(m.bytes.size());
    for (size_t i = 0; i < m.bytes.size(); ++i)
      if (st[id].bytes[i] != m.bytes[i])
        return p + "byte " + std::to_string(i) + " is " + std::to_string(st[id].bytes[i]) + " want " +
               std::to_string(m.bytes[i]);
    if (st[id].version != m.version)
      return p + "version " + std::to_string(st[id].version) + " want " + std::to_string(m.version);
    if (st[id].name != m.name) return p + "name '" + st[id].name + "' want '" + m.name + "'";
    if (st[id].created_epoch != m.created_epoch)
      return p + "created at " + std::to_string(st[id].created_epoch) + " want " + std::to_string(m.created_epoch);
  }
  return {};
}

}  // namespace tlogr
