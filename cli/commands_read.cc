// mmsb-replay info | log | cat | diff | deps: looking at a recording.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "cli.h"
#include "mmsb/json.h"
#include "output.h"

namespace mmsb::cli {

namespace {

using replay::CauseTree;
using replay::DeltaInfo;
using replay::Index;
using replay::PageDiff;
using replay::Recording;

// "0+5 16+16": a delta's ranges as offset+length.
// At most kLogRanges of them, then "(+N more)": a delta of thousands of
// ranges stays one readable line (--bytes and --json list them all).
constexpr size_t kLogRanges = 8;
std::string ranges_text(std::span<const Range> ranges) {
  std::string out;
  for (size_t i = 0; i < ranges.size() && i < kLogRanges; ++i) {
    if (!out.empty()) out += ' ';
    out += std::to_string(ranges[i].offset) + "+" + std::to_string(ranges[i].length);
  }
  if (ranges.size() > kLogRanges) out += fmt(" (+%zu more)", ranges.size() - kLogRanges);
  return out;
}

// "page" and "name", both null when the page is not known.
void json_page(Json& j, const Recording& rec, PageId id) {
  if (id == kNoPage) {
    j.key("page").null();
    j.key("name").null();
    return;
  }
  j.field("page", id).field("name", page_name(rec, id));
}

// ---------------------------------------------------------------- info

struct InfoArgs {
  Common common;
  std::string dir;
  bool pages = false;
};

struct SegmentEpochs {
  uint64_t frames = 0, delta_frames = 0;
  Epoch first = 0, last = 0;
};

int run_info(const InfoArgs& a) {
  auto rec = open_recording(a.dir, a.common, /*warn_damage=*/false);
  const replay::MetaInfo& m = rec->meta();

  std::vector<SegmentEpochs> seg(rec->segments().size());
  for (const replay::FrameRef& f : rec->frames()) {
    SegmentEpochs& s = seg[f.segment];
    ++s.frames;
    if (f.header.kind != format::FrameKind::kDeltas) continue;
    if (s.delta_frames++ == 0) s.first = f.header.first_epoch;
    s.last = std::max(s.last, f.header.last_epoch);
  }
  uint64_t disk = 0;
  for (const replay::SegmentInfo& s : rec->segments()) disk += s.file_bytes;
  const double per_delta = rec->delta_count() ? double(disk) / double(rec->delta_count()) : 0.0;
  const std::string damage = rec->damage().ok() ? "" : rec->damage().to_string();

  if (a.common.json) {
    Json j;
    j.begin_object();
    j.field("dir", rec->dir().string());
    j.field("format", std::to_string(m.format_major) + "." + std::to_string(m.format_minor));
    j.field("program", m.program).field("host", m.host).field("pid", m.pid);
    j.field("start_time", iso8601_utc(m.start_time_ns)).field("start_time_ns", m.start_time_ns);
    j.key("labels").begin_object();
    for (const auto& [k, v] : m.labels) j.field(k, v);
    j.end_object();
    j.key("segments").begin_array();
    for (size_t i = 0; i < rec->segments().size(); ++i) {
      const replay::SegmentInfo& s = rec->segments()[i];
      j.begin_object().field("file", s.path.filename().string()).field("number", s.number);
      j.field("bytes", s.file_bytes).field("good_bytes", s.good_bytes).field("closed", s.closed);
      j.field("start_epoch", s.start_epoch).field("frames", seg[i].frames);
      j.field("delta_frames", seg[i].delta_frames);
      j.key("first_epoch");  // null for a segment without delta frames
      if (seg[i].delta_frames) j.num(seg[i].first); else j.null();
      j.key("last_epoch");
      if (seg[i].delta_frames) j.num(seg[i].last); else j.null();
      j.end_object();
    }
    j.end_array();
    j.field("start_epoch", rec->start_epoch());
    j.key("first_epoch");  // null without deltas
    if (rec->delta_count()) j.num(rec->first_delta_epoch()); else j.null();
    j.field("last_epoch", rec->last_epoch()).field("deltas", rec->delta_count());
    j.field("page_count", uint64_t{rec->pages().size()});
    j.key("pages").begin_array();
    for (const replay::PageMeta& p : rec->pages())
      j.begin_object().field("id", p.id).field("name", p.name).field("size", p.size).field("created", p.created).end_object();
    j.end_array();
    j.key("snapshots").begin_array();
    for (const replay::SnapshotInfo& s : rec->snapshots()) {
      j.begin_object().field("id", s.id).field("first_epoch", s.first_epoch).field("last_epoch", s.last_epoch);
      j.field("parts", uint64_t{s.parts.size()}).field("complete", s.complete).end_object();
    }
    j.end_array();
    j.field("bytes", disk).field("bytes_per_delta", per_delta).field("live", rec->live());
    j.key("damage");
    if (damage.empty()) j.null(); else j.str(damage);
    j.end_object();
    print(j.text());
    return kExitOk;
  }

  std::string out;
  out += "recording   " + rec->dir().string() + "\n";
  out += fmt("format      %u.%u\n", m.format_major, m.format_minor);
  out += "program     " + printable(m.program, '\0') + "\n";
  out += "host        " + printable(m.host, '\0') + "\n";
  out += fmt("pid         %u\n", m.pid);
  out += "started     " + iso8601_utc(m.start_time_ns) + "\n";
  out += std::string("writer      ") + (rec->live() ? "running (a process holds the recording's writer lock)" : "ended") + "\n";
  std::string labels;
  for (const auto& [k, v] : m.labels)
    labels += (labels.empty() ? "" : " ") + printable(k, '\0') + "=" + printable(v, '\0');
  out += "labels      " + (labels.empty() ? std::string("-") : labels) + "\n";
  out += fmt("segments    %zu\n", rec->segments().size());
  for (size_t i = 0; i < rec->segments().size(); ++i) {
    const replay::SegmentInfo& s = rec->segments()[i];
    out += fmt("  %s  %" PRIu64 " B  %s  ", s.path.filename().string().c_str(), s.file_bytes,
               s.closed ? "closed" : "open  ");
    out += seg[i].delta_frames ? fmt("epochs %" PRIu64 "..%" PRIu64, seg[i].first, seg[i].last)
                               : std::string("no deltas");
    if (s.good_bytes < s.file_bytes)
      out += fmt("  (%" PRIu64 " B unreadable from offset %" PRIu64 ")", s.file_bytes - s.good_bytes, s.good_bytes);
    out += "\n";
  }
  if (rec->delta_count())
    out += fmt("epochs      start %" PRIu64 ", first %" PRIu64 ", last %" PRIu64 "\n", rec->start_epoch(),
               rec->first_delta_epoch(), rec->last_epoch());
  else
    out += fmt("epochs      start %" PRIu64 ", no deltas\n", rec->start_epoch());
  out += fmt("deltas      %" PRIu64 "\n", rec->delta_count());
  out += fmt("pages       %zu\n", rec->pages().size());
  if (a.pages) {
    out += "  id      size  created  name\n";
    for (const replay::PageMeta& p : rec->pages())
      out += fmt("  %-4u %8" PRIu64 "  %7" PRIu64 "  %s\n", p.id, p.size, p.created, printable(p.name, '\0').c_str());
  }
  out += fmt("snapshots   %zu\n", rec->snapshots().size());
  for (const replay::SnapshotInfo& s : rec->snapshots())
    out += fmt("  #%u  epochs %" PRIu64 "..%" PRIu64 "  %zu part(s)  %s\n", s.id, s.first_epoch, s.last_epoch,
               s.parts.size(), s.complete ? "complete" : "incomplete");
  out += fmt("bytes       %" PRIu64 " on disk", disk);
  if (rec->delta_count()) out += fmt(", %.1f per delta", per_delta);
  out += "\n";
  out += "damage      " + (damage.empty() ? std::string("none") : damage) + "\n";
  print(out);
  if (!damage.empty() && !a.common.quiet)
    std::fprintf(stderr, "mmsb-replay: warning: the recording is %s; only epochs up to %" PRIu64 " are readable\n  %s\n",
                 rec->live() ? "still being recorded" : "damaged", rec->last_epoch(), damage_advice(*rec).c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- log

struct LogArgs {
  Common common;
  std::string dir;
  std::vector<std::string> pages;
  std::string from, to;
  bool derived_only = false;
  uint64_t limit = 0;
  bool bytes = false;
};

int run_log(const LogArgs& a) {
  auto rec = open_recording(a.dir, a.common);
  const Epoch lo = rec->start_epoch(), hi = rec->last_epoch();
  const Epoch from = a.from.empty() ? 0 : parse_epoch(a.from, *rec, lo, hi, "--from");  // 0: every delta
  const Epoch to = a.to.empty() ? hi : parse_epoch(a.to, *rec, lo, hi, "--to");
  if (from > to)
    throw Error{kExitUsage, fmt("--from %" PRIu64 " is after --to %" PRIu64, from, to), ""};
  std::vector<PageId> pages;
  for (const std::string& p : a.pages) pages.push_back(resolve_page(*rec, p));
  auto index = build_index(*rec, a.common);

  // The epochs to list, ascending.
  std::vector<Epoch> epochs;
  const Epoch first = std::max(from, index->first_epoch());
  if (!pages.empty()) {
    std::sort(pages.begin(), pages.end());
    pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
    for (PageId p : pages)
      for (Epoch e : index->page_epochs(p))
        if (e >= first && e <= to) epochs.push_back(e);
    std::sort(epochs.begin(), epochs.end());
  }
  const bool all = pages.empty();

  Json j;
  if (a.common.json) j.begin_object().field("dir", rec->dir().string()).key("deltas").begin_array();
  uint64_t shown = 0;
  bool truncated = false;
  std::string out;
  auto show = [&](const DeltaInfo& d) {
    if (a.common.json) {
      j.begin_object().field("epoch", d.epoch);
      json_page(j, *rec, d.page);
      j.field("version", d.version);
      j.key("cause");
      if (d.derived()) j.num(d.cause); else j.null();
      j.key("ranges").begin_array();
      uint64_t at = 0;
      for (const Range& r : d.ranges) {
        j.begin_object().field("offset", r.offset).field("length", r.length);
        if (a.bytes) j.field("bytes", d.bytes.subspan(at, r.length));
        at += r.length;
        j.end_object();
      }
      j.end_array().end_object();
      if (j.text().size() > (1u << 16)) print(j.take());
      return;
    }
    out += fmt("epoch %" PRIu64 "  page %s  v%" PRIu64 "  ", d.epoch, page_label(*rec, d.page).c_str(), d.version);
    out += ranges_text(d.ranges);
    if (d.derived()) out += fmt("  cause %" PRIu64, d.cause);
    out += '\n';
    if (a.bytes) {
      uint64_t at = 0;
      for (const Range& r : d.ranges) {
        for (uint64_t i = 0; i < r.length; i += 16) {  // 16 bytes a line, as diff
          const uint64_t n = std::min<uint64_t>(16, r.length - i);
          out += fmt("    %" PRIu64 ": ", uint64_t{r.offset} + i) + hex(d.bytes.subspan(at + i, n)) + "\n";
        }
        at += r.length;
      }
    }
    if (out.size() > (1u << 16)) {
      print(out);
      out.clear();
    }
  };
  auto visit = [&](Epoch e) {
    const std::optional<DeltaInfo> d = index->delta(e);
    if (!d || (a.derived_only && !d->derived())) return true;
    if (a.limit && shown == a.limit) {
      truncated = true;
      return false;
    }
    show(*d);
    ++shown;
    return true;
  };
  if (all) {
    for (Epoch e = first; e <= to && index->delta_count() > 0; ++e)
      if (!visit(e)) break;
  } else {
    for (Epoch e : epochs)
      if (!visit(e)) break;
  }
  if (a.common.json) {
    j.end_array().field("count", shown).field("truncated", truncated).end_object();
    print(j.text());
  } else {
    print(out);
  }
  return kExitOk;
}

// ---------------------------------------------------------------- cat

struct CatArgs {
  Common common;
  std::string dir, page, epoch;
  bool by_id = false, by_name = false;
  bool raw = false;
  std::string output;
  std::optional<uint64_t> offset, length;
};

int run_cat(const CatArgs& a) {
  auto rec = open_recording(a.dir, a.common);
  const PageId page = resolve_page(*rec, a.page, a.by_id ? PageBy::kId : a.by_name ? PageBy::kName : PageBy::kAuto);
  const Epoch asked = a.epoch.empty() ? rec->last_epoch()
                                      : parse_epoch(a.epoch, *rec, rec->start_epoch(), rec->last_epoch(), "--epoch");
  const replay::PageMeta& meta = rec->pages()[page];
  if (a.raw && a.output.empty() && !a.common.json && isatty(STDOUT_FILENO))
    throw Error{kExitUsage, "refusing to write raw bytes to a terminal", "redirect stdout or give -o FILE"};
  auto index = build_index(*rec, a.common);
  const Epoch epoch = require_readable(*index, asked, a.epoch, "--epoch");
  if (page >= index->page_count_at(epoch))
    throw Error{kExitUsage,
                fmt("page %s does not exist at epoch %" PRIu64 " (it was created at epoch %" PRIu64 ")",
                    page_label(*rec, page).c_str(), epoch, meta.created),
                ""};
  const uint64_t offset = a.offset.value_or(0);
  if (offset > meta.size)
    throw Error{kExitUsage, fmt("--offset %" PRIu64 " is past the end of page %s (%" PRIu64 " bytes)", offset,
                                page_label(*rec, page).c_str(), meta.size),
                ""};
  const uint64_t length = a.length.value_or(meta.size - offset);
  if (length > meta.size - offset)
    throw Error{kExitUsage,
                fmt("--offset %" PRIu64 " --length %" PRIu64 " runs past the end of page %s (%" PRIu64 " bytes)",
                    offset, length, page_label(*rec, page).c_str(), meta.size),
                ""};
  // Only the bytes asked for are built (a window of a big page costs the window).
  std::vector<std::byte> bytes;
  if (Status s = index->page_range(page, epoch, offset, length, &bytes); !s.ok())
    throw Error{kExitBadInput, "cannot read page " + page_label(*rec, page) + ": " + s.to_string(), ""};
  const std::span<const std::byte> view(bytes);
  const Version version = index->version_at(page, epoch);

  if (!a.output.empty()) {
    std::ofstream f(a.output, std::ios::binary | std::ios::trunc);
    if (f) f.write(reinterpret_cast<const char*>(view.data()), static_cast<std::streamsize>(view.size()));
    if (!f || !f.flush())
      throw Error{kExitBadInput, "cannot write " + a.output + ": " + std::strerror(errno), ""};
  }
  if (a.common.json) {
    Json j;
    j.begin_object().field("epoch", epoch);
    json_page(j, *rec, page);
    j.field("version", version).field("size", meta.size).field("offset", offset).field("length", length);
    if (!a.output.empty()) j.field("file", a.output); else j.field("bytes", view);
    j.end_object();
    print(j.text());
  } else if (a.output.empty()) {
    constexpr size_t kChunk = size_t{1} << 16;  // a multiple of the dump's 16 bytes a line
    for (size_t at = 0; at < view.size(); at += kChunk) {
      const std::span<const std::byte> part = view.subspan(at, std::min(kChunk, view.size() - at));
      print(a.raw ? std::string(reinterpret_cast<const char*>(part.data()), part.size()) : hex_dump(part, offset + at));
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------- diff

struct DiffArgs {
  Common common;
  std::string dir, a, b, page;
  bool stat = false;  // headers and the summary only
};

int run_diff(const DiffArgs& a) {
  auto rec = open_recording(a.dir, a.common);
  const Epoch asked_a = parse_epoch(a.a, *rec, rec->start_epoch(), rec->last_epoch(), "epoch A");
  const Epoch asked_b = parse_epoch(a.b, *rec, rec->start_epoch(), rec->last_epoch(), "epoch B");
  std::optional<PageId> only;
  if (!a.page.empty()) only = resolve_page(*rec, a.page);
  auto index = build_index(*rec, a.common);
  const Epoch ea = require_readable(*index, asked_a, a.a, "epoch A");
  const Epoch eb = require_readable(*index, asked_b, a.b, "epoch B");

  std::vector<PageDiff> diffs;
  if (only) {
    if (*only >= index->page_count_at(std::max(ea, eb)))
      throw Error{kExitUsage, fmt("page %s does not exist at epoch %" PRIu64, page_label(*rec, *only).c_str(),
                                  std::max(ea, eb)),
                  ""};
    auto d = index->diff_page(*only, ea, eb);
    if (!d.ok()) throw Error{kExitBadInput, "diff: " + d.status().to_string(), ""};
    if (!d->ranges.empty() || d->created) diffs.push_back(std::move(d).value());
  } else {
    auto d = index->diff(ea, eb);
    if (!d.ok()) throw Error{kExitBadInput, "diff: " + d.status().to_string(), ""};
    diffs = std::move(d).value();
  }

  uint64_t ranges = 0, bytes = 0;
  for (const PageDiff& d : diffs) {
    ranges += d.ranges.size();
    for (const Range& r : d.ranges) bytes += r.length;
  }
  if (a.common.json) {
    Json j;
    j.begin_object().field("from", ea).field("to", eb).key("pages").begin_array();
    for (const PageDiff& d : diffs) {
      j.begin_object();
      json_page(j, *rec, d.page);
      j.field("created", d.created).key("created_at");  // the creation epoch of a page created in between
      if (d.created) j.num(rec->pages()[d.page].created); else j.null();
      j.field("old_version", d.old_version).field("new_version", d.new_version);
      j.key("ranges").begin_array();
      uint64_t at = 0;
      for (const Range& r : d.ranges) {
        j.begin_object().field("offset", r.offset).field("length", r.length);
        if (!a.stat) {
          j.field("old", std::span<const std::byte>(d.old_bytes).subspan(at, r.length));
          j.field("new", std::span<const std::byte>(d.new_bytes).subspan(at, r.length));
        }
        j.end_object();
        at += r.length;
      }
      j.end_array().end_object();
    }
    j.end_array();
    j.field("pages_differing", uint64_t{diffs.size()}).field("ranges", ranges).field("bytes", bytes).end_object();
    print(j.text());
    return kExitOk;
  }
  std::string out;
  for (const PageDiff& d : diffs) {
    out += "page " + page_label(*rec, d.page);
    if (d.created) out += fmt(" (created at epoch %" PRIu64 ")", rec->pages()[d.page].created);
    out += fmt("  v%" PRIu64 " -> v%" PRIu64 ", %zu range(s)\n", d.old_version, d.new_version, d.ranges.size());
    uint64_t at = 0;
    for (const Range& r : a.stat ? std::span<const Range>() : std::span<const Range>(d.ranges)) {
      for (uint64_t i = 0; i < r.length; i += 16) {  // 16 bytes a line
        const uint64_t n = std::min<uint64_t>(16, r.length - i);
        out += fmt("  offset %" PRIu64 ": ", uint64_t{r.offset} + i);
        out += hex(std::span<const std::byte>(d.old_bytes).subspan(at + i, n)) + " -> " +
               hex(std::span<const std::byte>(d.new_bytes).subspan(at + i, n)) + "\n";
      }
      at += r.length;
    }
    if (out.size() > (1u << 16)) {
      print(out);
      out.clear();
    }
  }
  out += fmt("%zu page(s) differ between epochs %" PRIu64 " and %" PRIu64 ": %" PRIu64 " byte(s) in %" PRIu64
             " range(s)\n",
             diffs.size(), ea, eb, bytes, ranges);
  print(out);
  return kExitOk;
}

// ---------------------------------------------------------------- deps

struct DepsArgs {
  Common common;
  std::string dir, epoch;
  bool root = false;
};

void tree_text(const Index& index, const CauseTree& t, int depth, std::string& out) {
  const std::optional<DeltaInfo> d = index.delta(t.epoch);
  out += std::string(size_t(depth) * 2, ' ') +
         fmt("epoch %" PRIu64 "  page %s", t.epoch, page_label(index.recording(), t.page).c_str());
  if (d) out += fmt("  v%" PRIu64, d->version);
  out += '\n';
  for (const CauseTree& c : t.children) tree_text(index, c, depth + 1, out);
}

void tree_json(const Index& index, const CauseTree& t, Json& j) {
  j.begin_object().field("epoch", t.epoch);
  json_page(j, index.recording(), t.page);
  j.key("children").begin_array();
  for (const CauseTree& c : t.children) tree_json(index, c, j);
  j.end_array().end_object();
}

int run_deps(const DepsArgs& a) {
  auto rec = open_recording(a.dir, a.common);
  if (rec->delta_count() == 0) throw Error{kExitUsage, "the recording has no deltas", ""};
  const Epoch asked = parse_epoch(a.epoch, *rec, 0, UINT64_MAX, "epoch");
  if (asked < rec->first_delta_epoch() || asked > rec->last_epoch())  // 'start', a state before any delta
    throw Error{kExitUsage,
                fmt("deps needs a delta's epoch (first..last = %" PRIu64 "..%" PRIu64 "); epoch %" PRIu64 " %s",
                    rec->first_delta_epoch(), rec->last_epoch(), asked,
                    asked > rec->last_epoch() ? "is past the last delta" : "is the state before the first delta"),
                ""};
  auto index = build_index(*rec, a.common);
  const Epoch epoch = require_readable(*index, asked, a.epoch, "epoch");
  const std::vector<Epoch> chain = index->cause_chain(epoch);

  if (a.common.json) {
    Json j;
    j.begin_object().field("epoch", epoch);
    if (!a.root) {
      j.key("tree");
      tree_json(*index, index->caused_tree(epoch), j);
    }
    j.key("chain").begin_array();
    for (Epoch e : chain) {
      const std::optional<DeltaInfo> d = index->delta(e);
      j.begin_object().field("epoch", e);
      json_page(j, *rec, d ? d->page : kNoPage);
      j.end_object();
    }
    j.end_array().field("root", chain.empty() ? epoch : chain.back()).end_object();
    print(j.text());
    return kExitOk;
  }
  std::string out;
  if (a.root) {
    for (size_t i = 0; i < chain.size(); ++i) {
      const std::optional<DeltaInfo> d = index->delta(chain[i]);
      out += fmt("epoch %" PRIu64 "  page %s", chain[i], d ? page_label(*rec, d->page).c_str() : "-");
      out += d && d->derived() ? fmt("  caused by %" PRIu64 "\n", d->cause) : std::string("  root cause\n");
    }
  } else {
    tree_text(*index, index->caused_tree(epoch), 0, out);
    if (chain.size() > 1) {
      out += "cause chain:";
      for (size_t i = 0; i < chain.size(); ++i) out += (i ? " <- " : " ") + std::to_string(chain[i]);
      out += " (root)\n";
    }
  }
  print(out);
  return kExitOk;
}

}  // namespace

void add_read_commands(CLI::App& app, std::vector<Command>& commands) {
  {
    auto a = std::make_shared<InfoArgs>();
    CLI::App* c = add_command(app, "info", "Describe a recording: origin, segments, epochs, pages, snapshots, size",
                              "  mmsb-replay info run.mmsb --pages", a->common,
                              "Reads segment headers, indexes and page tables only: delta payloads are\n"
                              "checked by 'verify'. A recording opened with damage is still described, with\n"
                              "a 'damage' line and a warning on stderr (exit 0). Exit 3: DIR is missing or\n"
                              "not a recording.");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_flag("--pages", a->pages, "List every page: id, size, creation epoch, name");
    commands.push_back({c, [a] { return run_info(*a); }});
  }
  {
    auto a = std::make_shared<LogArgs>();
    CLI::App* c = add_command(app, "log", "List deltas: epoch, page, version, ranges (offset+length), cause",
                              "  mmsb-replay log run.mmsb --page alpha --from 10 --to 20 --bytes", a->common,
                              "One line per delta: epoch, page (id 'name'), the page's version after it, its\n"
                              "ranges as offset+length (decimal) and, for a derived delta, the epoch of the\n"
                              "delta that caused it. --bytes adds a line per range: offset: new bytes.");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_option("-p,--page", a->pages, "Only deltas to this page (name or id); repeatable")
        ->allow_extra_args(false);
    c->add_option("--from", a->from, "First epoch to list (default: the first)")->check(nonempty_arg("an epoch"));
    c->add_option("--to", a->to, "Last epoch to list (default: the last)")->check(nonempty_arg("an epoch"));
    c->add_flag("--derived-only", a->derived_only, "Only deltas written by dependency updates");
    c->add_option("-n,--limit", a->limit, "Stop after N deltas (0: no limit)")->check(unsigned_arg());
    c->add_flag("--bytes", a->bytes, "Also print the new bytes of every range, in hex");
    commands.push_back({c, [a] { return run_log(*a); }});
  }
  {
    auto a = std::make_shared<CatArgs>();
    CLI::App* c = add_command(app, "cat", "Print a page at an epoch as a hex dump, or its raw bytes",
                              "  mmsb-replay cat run.mmsb alpha --epoch 3\n"
                              "  mmsb-replay cat run.mmsb 1 --epoch last --raw > beta.bin",
                              a->common,
                              "PAGE: an exact name match wins, else digits are an id; --id or --name force\n"
                              "one reading (for a page named with digits). The hex dump is hexdump -C's:\n"
                              "offsets in hex, 16 bytes a line, printable ASCII between bars. --raw and -o\n"
                              "write the bytes unchanged (--raw refuses a terminal).");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_option("PAGE", a->page, "Page name or id (a name match wins; see --id, --name)")->required();
    c->add_option("-e,--epoch", a->epoch, "Epoch (default: last)")->check(nonempty_arg("an epoch"));
    auto* id = c->add_flag("--id", a->by_id, "PAGE is a page id");
    c->add_flag("--name", a->by_name, "PAGE is a page name")->excludes(id);
    auto* output = c->add_option("-o,--output", a->output, "Write the bytes themselves to this file")
                       ->check(nonempty_arg("-o FILE"));
    // --raw is the third way to print the bytes: it cannot be combined with the others.
    c->add_flag("--raw", a->raw, "Write the bytes themselves to stdout")->excludes(output)->excludes("--json");
    c->add_option("--offset", a->offset, "First byte, decimal or 0x hex (default 0)")->check(byte_arg());
    c->add_option("--length", a->length, "Number of bytes, decimal or 0x hex (default: to the end of the page)")
        ->check(byte_arg());
    commands.push_back({c, [a] { return run_cat(*a); }});
  }
  {
    auto a = std::make_shared<DiffArgs>();
    CLI::App* c = add_command(app, "diff", "Bytes that differ between two epochs, page by page (old -> new)",
                              "  mmsb-replay diff run.mmsb 3 8 --page alpha", a->common,
                              "One header per page that differs (id, name, versions at A and B), then a\n"
                              "line per 16 differing bytes: offset (decimal): old hex -> new hex. A page\n"
                              "created in between is compared with zeros (and listed even when still all\n"
                              "zeros). --stat prints the headers and the totals only. Exit 0 whether or\n"
                              "not anything differs (use 'compare' for a verdict).");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_option("A", a->a, "Epoch A (old)")->required()->check(nonempty_arg("an epoch"));
    c->add_option("B", a->b, "Epoch B (new)")->required()->check(nonempty_arg("an epoch"));
    c->add_option("-p,--page", a->page, "Only this page (name or id)");
    c->add_flag("--stat", a->stat, "Only the page headers and the totals, no bytes (--json: ranges without bytes)");
    commands.push_back({c, [a] { return run_diff(*a); }});
  }
  {
    auto a = std::make_shared<DepsArgs>();
    CLI::App* c = add_command(app, "deps",
                              "Propagation of a delta: the deltas it caused, and its chain back to the root cause",
                              "  mmsb-replay deps run.mmsb 4\n  mmsb-replay deps run.mmsb 5 --root", a->common,
                              "Prints the tree of deltas caused by EPOCH (indented, in epoch order) and,\n"
                              "when EPOCH is itself derived, its cause chain back to the root. --root prints\n"
                              "only that chain, one delta per line, the root last.");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_option("EPOCH", a->epoch, "Epoch of the delta")->required();
    c->add_flag("--root", a->root, "Print only the chain from the delta back to its root cause");
    commands.push_back({c, [a] { return run_deps(*a); }});
  }
}

}  // namespace mmsb::cli
