// mmsb-replay verify | compare | recover | export: whole-recording tools.
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <tuple>

#include "cli.h"
#include "mmsb/json.h"
#include "mmsb/replay/tools.h"
#include "output.h"

namespace mmsb::cli {

namespace {

// Lines of differing bytes (16 a line) and pages compare lists as text.
constexpr size_t kCompareLines = 16;

using replay::CompareReport;
using replay::Index;
using replay::Recording;

bool progress_enabled(const Common& c) { return stderr_is_terminal() && !c.json && !c.quiet; }

// ---------------------------------------------------------------- verify

struct VerifyArgs {
  Common common;
  std::string dir;
};

int run_verify(const VerifyArgs& a) {
  // Opening first tells "not a recording" (exit 3) from "damaged" (exit 1).
  auto rec = open_recording(a.dir, a.common, /*warn_damage=*/false);
  ProgressBar bar("verifying", progress_enabled(a.common));
  const replay::VerifyReport r = replay::verify(a.dir, bar.callback());
  bar.done();

  if (a.common.json) {
    Json j;
    j.begin_object().field("dir", a.dir).field("ok", r.ok);
    if (!r.ok) {
      // Epoch 0 and kNoPage mean "not known" (VerifyReport): null.
      j.field("problem", r.problem).field("file", r.file).field("offset", r.offset).key("epoch");
      if (r.epoch == 0) j.null(); else j.num(r.epoch);
      j.key("page");
      if (r.page == kNoPage) j.null(); else j.num(r.page);
      j.key("name");
      if (r.page == kNoPage) j.null(); else j.str(page_name(*rec, r.page));
    }
    j.field("frames", r.frames).field("deltas", r.deltas).field("snapshots", r.snapshots);
    j.field("snapshot_pages", r.snapshot_pages).field("bytes", r.bytes).end_object();
    print(j.text());
  } else if (r.ok) {
    print(fmt("ok: %" PRIu64 " frames, %" PRIu64 " deltas, %" PRIu64 " snapshots checked\n", r.frames, r.deltas,
              r.snapshots));
  } else {
    std::string out = "FAILED: " + r.problem + "\n";
    if (!r.file.empty()) out += fmt("  file %s, offset %" PRIu64 "\n", r.file.c_str(), r.offset);
    if (r.epoch != 0) out += fmt("  epoch %" PRIu64 "\n", r.epoch);
    if (r.page != kNoPage) out += "  page " + page_label(*rec, r.page) + "\n";
    print(out);
  }
  if (!r.ok && !a.common.quiet) {
    // recover cuts damage, drops bad snapshots and closes segments; deltas
    // in well-formed frames that cannot be replayed are beyond it, and a live
    // writer's frames in flight are not damage.
    const std::string hint =
        r.live          ? "a process is still recording into it: verify it once the program has ended"
        : r.end_missing ? "copy the missing segment files back if they exist elsewhere; otherwise 'mmsb-replay "
                          "recover " + a.dir + "' ends the recording where its files end"
        : r.recoverable ? "'mmsb-replay recover " + a.dir +
                              "' repairs it: it cuts at the first damage, or drops a bad snapshot keeping every epoch"
                        : "'mmsb-replay recover' cannot repair this: every frame is intact, "
                          "but their deltas cannot be replayed";
    std::fflush(stdout);  // the verdict above comes first in a log that holds both
    std::fprintf(stderr, "mmsb-replay: %s failed verification\n  %s\n", a.dir.c_str(), hint.c_str());
  }
  return r.ok ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- compare

struct CompareArgs {
  Common common;
  std::string a, b;
  std::vector<std::string> ignore_pages, ignore_ranges;
  bool final_only = false;
};

// A page argument of --ignore-page/--ignore-range: known to either run.
PageId resolve_either(const Recording& a, const Recording& b, const std::string& text) {
  try {
    return resolve_page(a, text);
  } catch (const Error&) {
    return resolve_page(b, text);
  }
}

// PAGE:OFFSET:LENGTH, PAGE a name, an id or '*' (every page).
replay::ByteRange parse_range(const Recording& a, const Recording& b, const std::string& text) {
  const size_t c2 = text.rfind(':');
  const size_t c1 = c2 == std::string::npos || c2 == 0 ? std::string::npos : text.rfind(':', c2 - 1);
  const auto number = [&](const std::string& s, uint64_t* v) {  // decimal or 0x hex, as cat's --offset
    const std::optional<uint64_t> n = replay::parse_offset(s);
    if (n) *v = *n;
    return n.has_value();
  };
  replay::ByteRange r;
  if (c1 == std::string::npos || !number(text.substr(c1 + 1, c2 - c1 - 1), &r.offset) ||
      !number(text.substr(c2 + 1), &r.length))
    throw Error{kExitUsage, "--ignore-range '" + printable(text) + "' is not PAGE:OFFSET:LENGTH",
                "e.g. --ignore-range clock:0:8, or '*:0:8' for every page"};
  const std::string page = text.substr(0, c1);
  r.page = page == "*" ? kNoPage : resolve_either(a, b, page);
  return r;
}

std::string outcome_name(CompareReport::Outcome o) {
  switch (o) {
    case CompareReport::Outcome::kIdentical: return "identical";
    case CompareReport::Outcome::kDiverged: return "diverged";
    case CompareReport::Outcome::kPrefix: return "prefix";
  }
  return "?";
}

int run_compare(const CompareArgs& a) {
  auto ra = open_recording(a.a, a.common);
  auto rb = open_recording(a.b, a.common);
  replay::CompareOptions options;
  options.final_only = a.final_only;
  for (const std::string& p : a.ignore_pages) {
    resolve_either(*ra, *rb, p);  // exit 2 for a page neither run has
    options.ignore_pages.push_back(p);
  }
  for (const std::string& r : a.ignore_ranges) options.ignore_ranges.push_back(parse_range(*ra, *rb, r));
  auto ia = build_index(*ra, a.common);
  auto ib = build_index(*rb, a.common);
  ProgressBar bar("comparing", progress_enabled(a.common));
  auto result = replay::compare(*ia, *ib, options, bar.callback());
  bar.done();
  // An ignore that names nothing in either run is a usage error, like an unknown page.
  if (!result.ok())
    throw Error{result.status().code() == Code::kInvalidArgument ? kExitUsage : kExitBadInput,
                "compare: " + result.status().to_string(),
                result.status().code() == Code::kInvalidArgument ? "see 'mmsb-replay info A --pages' for page sizes" : ""};
  const CompareReport& r = *result;
  // Damage that ended a run early (a prefix may be nothing more than that).
  const std::string damage_a = damage_text(*ra, *ia), damage_b = damage_text(*rb, *ib);
  // The page as named in A (or B, for a page only B has).
  const Recording& named = r.page < ra->pages().size() ? *ra : *rb;

  if (a.common.json) {
    Json j;
    j.begin_object().field("a", a.a).field("b", a.b).field("outcome", outcome_name(r.outcome));
    j.field("summary", r.summary).field("epochs_compared", r.epochs_compared);
    j.field("a_last", r.a_last).field("b_last", r.b_last);
    if (r.outcome == CompareReport::Outcome::kDiverged) {
      j.field("epoch", r.epoch).key("page");
      if (r.page == kNoPage) j.null(); else j.num(r.page);
      j.field("name", r.page_name).key("ranges").begin_array();
      uint64_t at = 0;
      for (const Range& g : r.ranges) {
        j.begin_object().field("offset", g.offset).field("length", g.length);
        j.field("a", std::span<const std::byte>(r.a_bytes).subspan(at, g.length));
        j.field("b", std::span<const std::byte>(r.b_bytes).subspan(at, g.length));
        j.end_object();
        at += g.length;
      }
      j.end_array();
      j.key("also_differ").begin_array();
      for (PageId p : r.also_differ) j.num(p);
      j.end_array();
    }
    if (r.outcome == CompareReport::Outcome::kPrefix) j.field("shorter", r.shorter);
    j.key("damage_a");
    if (damage_a.empty()) j.null(); else j.str(damage_a);
    j.key("damage_b");
    if (damage_b.empty()) j.null(); else j.str(damage_b);
    j.end_object();
    print(j.text());
  } else {
    std::string out;
    switch (r.outcome) {
      case CompareReport::Outcome::kIdentical:
        out = r.a_last == r.b_last && !a.final_only
                  ? fmt("identical: %" PRIu64 " epoch(s) compared, both end at epoch %" PRIu64 "\n",
                        r.epochs_compared, r.a_last)
                  : fmt("identical final states: A ends at epoch %" PRIu64 ", B at epoch %" PRIu64 "\n", r.a_last,
                        r.b_last);
        break;
      case CompareReport::Outcome::kPrefix: {
        const bool a_short = r.shorter == "a";
        // A run cut short by damage is not a run that stopped early: say so
        // on the verdict line, which is what a CI log shows.
        const std::string& damage = a_short ? damage_a : damage_b;
        out = fmt("prefix: %s stops at epoch %" PRIu64 ", %s goes on to epoch %" PRIu64
                  "; identical up to epoch %" PRIu64 "\n",
                  a_short ? "A" : "B", a_short ? r.a_last : r.b_last, a_short ? "B" : "A",
                  a_short ? r.b_last : r.a_last, std::min(r.a_last, r.b_last));
        if (!damage.empty()) out += fmt("  %s is damaged there, not shorter: ", a_short ? "A" : "B") + damage + "\n";
        break;
      }
      case CompareReport::Outcome::kDiverged: {
        uint64_t bytes = 0;
        for (const Range& g : r.ranges) bytes += g.length;
        // No differing bytes to list (page tables or start epochs differ): the
        // summary says what does (its page names already printable).
        if (r.page == kNoPage || r.ranges.empty()) {
          out = r.summary + "\n";
          break;
        }
        out = a.final_only && r.a_last != r.b_last
                  ? fmt("final states differ (A at epoch %" PRIu64 ", B at epoch %" PRIu64 "): ", r.a_last, r.b_last)
                  : fmt("diverged at epoch %" PRIu64 ": ", r.epoch);
        out += "page " + page_label(named, r.page) +
               fmt(", %" PRIu64 " byte(s) in %zu range(s) differ\n", bytes, r.ranges.size());
        // 16 bytes a line, kCompareLines lines at most: a CI log gets the
        // start of the difference, --json all of it.
        uint64_t at = 0, lines = 0, shown = 0;
        size_t ranges_shown = 0;
        for (const Range& g : r.ranges) {
          if (lines == kCompareLines) break;
          for (uint64_t i = 0; i < g.length && lines < kCompareLines; i += 16, ++lines) {
            const uint64_t n = std::min<uint64_t>(16, g.length - i);
            out += fmt("  offset %" PRIu64 ": ", uint64_t{g.offset} + i) +
                   hex(std::span<const std::byte>(r.a_bytes).subspan(at + i, n)) + " -> " +
                   hex(std::span<const std::byte>(r.b_bytes).subspan(at + i, n)) + "\n";
            shown += n;
          }
          ++ranges_shown;
          at += g.length;
        }
        if (shown < bytes)
          out += fmt("  ... %" PRIu64 " more byte(s) in %zu range(s) not shown (--json lists them all)\n",
                     bytes - shown, r.ranges.size() - ranges_shown + (at > shown ? 1 : 0));
        if (!r.also_differ.empty()) {
          out += "also differ:";
          for (size_t i = 0; i < r.also_differ.size() && i < kCompareLines; ++i)
            out += (i ? ", page " : " page ") + page_label(named, r.also_differ[i]);
          if (r.also_differ.size() > kCompareLines)
            out += fmt(" and %zu more page(s)", r.also_differ.size() - kCompareLines);
          out += "\n";
        }
        break;
      }
    }
    // A divergence at or past where a damaged run's readable history ends
    // may be nothing but that damage (a page table lost with it, say).
    if (r.outcome == CompareReport::Outcome::kDiverged)
      for (const auto& [name, damage, last] : {std::tuple{"A", &damage_a, r.a_last}, std::tuple{"B", &damage_b, r.b_last}})
        if (!damage->empty() && r.epoch >= last)
          out += fmt("  %s is damaged at its epoch %" PRIu64 ", where its readable history ends: ", name, last) +
                 *damage + "\n";
    print(out);
  }
  return r.outcome == CompareReport::Outcome::kIdentical ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- recover

struct RecoverArgs {
  Common common;
  std::string dir;
  bool dry_run = false;
};

int run_recover(const RecoverArgs& a) {
  ProgressBar bar("checking frames", progress_enabled(a.common));
  auto result = replay::recover(a.dir, a.dry_run, bar.callback());
  bar.done();
  if (!result.ok()) {
    // Not a recording: the same hint as the other commands; other errors (I/O) speak for themselves.
    const Status& s = result.status();
    const bool not_recording = s.code() != Code::kCorruption || s.message().find("not a recording directory") !=
                                                                     std::string::npos;
    throw Error{kExitBadInput, "cannot recover '" + printable(a.dir) + "': " + s.to_string(),
                not_recording ? open_hint(s) : ""};
  }
  const replay::RecoverReport& r = *result;
  const char* outcome = r.outcome == replay::RecoverReport::Outcome::kIntact ? "intact"
                        : r.outcome == replay::RecoverReport::Outcome::kCut  ? "cut"
                                                                              : "nothing";
  if (a.common.json) {
    Json j;
    j.begin_object().field("dir", a.dir).field("dry_run", a.dry_run).field("outcome", outcome);
    j.field("summary", r.summary).field("last_good_epoch", r.last_good_epoch).field("deltas_kept", r.deltas_kept);
    j.field("bytes_cut", r.bytes_cut).key("cut_to_epoch");  // the last epoch the cut frames held
    if (r.lost_last > r.last_good_epoch) j.num(r.lost_last); else j.null();
    j.key("set_aside").begin_array();
    for (const auto& p : r.set_aside) j.str(p.string());
    j.end_array().key("actions").begin_array();
    for (const std::string& s : r.actions) j.str(s);
    j.end_array().end_object();
    print(j.text());
  } else {
    std::string out;
    for (const std::string& s : r.actions) out += s + "\n";  // "would ..." in a dry run
    out += r.summary + "\n";
    // The verdict line, unless the summary already said there is nothing to do.
    if (r.outcome != replay::RecoverReport::Outcome::kNothing && !r.actions.empty())
      out += fmt("%s: last good epoch %" PRIu64 ", %" PRIu64 " delta(s) kept, %" PRIu64 " byte(s) cut%s\n", outcome,
                 r.last_good_epoch, r.deltas_kept, r.bytes_cut, a.dry_run ? " (dry run: nothing changed)" : "");
    for (const auto& p : r.set_aside) out += (a.dry_run ? "  would set aside: " : "  set aside: ") + p.string() + "\n";
    print(out);
  }
  switch (r.outcome) {
    case replay::RecoverReport::Outcome::kIntact: return kExitOk;
    case replay::RecoverReport::Outcome::kCut: return kExitFailed;
    case replay::RecoverReport::Outcome::kNothing: break;
  }
  std::fflush(stdout);
  if (!a.common.quiet) std::fprintf(stderr, "mmsb-replay: nothing in %s could be recovered\n", a.dir.c_str());
  return kExitBadInput;
}

// ---------------------------------------------------------------- export

struct ExportArgs {
  Common common;
  std::string dir, out, epoch;
};

int run_export(const ExportArgs& a) {
  auto rec = open_recording(a.dir, a.common);
  const Epoch asked = a.epoch.empty() ? rec->last_epoch()
                                      : parse_epoch(a.epoch, *rec, rec->start_epoch(), rec->last_epoch(), "--epoch");
  auto index = build_index(*rec, a.common);
  const Epoch epoch = require_readable(*index, asked, a.epoch, "--epoch");
  auto result = replay::export_state(*index, epoch, a.out);
  if (!result.ok()) {
    const Code c = result.status().code();
    const bool usage = c == Code::kAlreadyExists || c == Code::kInvalidArgument || c == Code::kFailedPrecondition;
    throw Error{usage ? kExitUsage : kExitBadInput, "cannot export to " + a.out + ": " + result.status().to_string(),
                usage ? "give a new or empty OUT_DIR" : ""};
  }
  const replay::ExportReport& r = *result;
  if (a.common.json) {
    Json j;
    j.begin_object().field("dir", a.dir).field("out", a.out).field("epoch", r.epoch).field("pages", r.pages);
    j.field("bytes", r.bytes).field("manifest", r.manifest.string()).end_object();
    print(j.text());
  } else {
    print(fmt("exported epoch %" PRIu64 ": %u page(s), %" PRIu64 " byte(s) to %s (manifest %s)\n", r.epoch, r.pages,
              r.bytes, a.out.c_str(), r.manifest.string().c_str()));
  }
  return kExitOk;
}

}  // namespace

void add_tool_commands(CLI::App& app, std::vector<Command>& commands) {
  {
    auto a = std::make_shared<VerifyArgs>();
    CLI::App* c = add_command(app, "verify",
                              "Check every frame, delta and snapshot; name the first problem",
                              "  mmsb-replay verify run.mmsb && echo intact", a->common,
                              "Reads every frame of every segment: checksums, FlatBuffers, contiguous epochs,\n"
                              "every delta against its page, every complete snapshot against the replayed\n"
                              "state, every segment's index. Exit 0: ok; 1: the first problem, with file,\n"
                              "offset, epoch and page; 3: DIR is missing or not a recording.");
    add_recording_arg(c, "DIR", &a->dir);
    commands.push_back({c, [a] { return run_verify(*a); }});
  }
  {
    auto a = std::make_shared<CompareArgs>();
    CLI::App* c = add_command(app, "compare",
                              "Compare two runs epoch by epoch; report the first divergence",
                              "  mmsb-replay compare run1.mmsb run2.mmsb --ignore-page clock --ignore-range "
                              "stats:0:8",
                              a->common,
                              "Exit 0: identical; 1: diverged (the first epoch after which the states differ,\n"
                              "the page, its differing byte ranges in A and B) or one run is a prefix of the\n"
                              "other; 3: a recording is missing or unreadable.");
    add_recording_arg(c, "A", &a->a, "Recording A");
    add_recording_arg(c, "B", &a->b, "Recording B");
    c->add_option("--ignore-page", a->ignore_pages, "Ignore this page (name or id); repeatable")
        ->allow_extra_args(false);
    c->add_option("--ignore-range", a->ignore_ranges,
                  "Ignore bytes PAGE:OFFSET:LENGTH (PAGE a name, an id, or * for every page); repeatable")
        ->allow_extra_args(false);
    c->add_flag("--final-only", a->final_only, "Compare only the final states");
    commands.push_back({c, [a] { return run_compare(*a); }});
  }
  {
    auto a = std::make_shared<RecoverArgs>();
    CLI::App* c = add_command(app, "recover",
                              "Repair a recording whose writer died; keep the intact prefix",
                              "  mmsb-replay recover run.mmsb --dry-run", a->common,
                              "Cuts each segment after its last good frame (the cut bytes are kept beside it\n"
                              "as <segment>.damaged), sets aside segments after a break in the history and\n"
                              "closes open segments with an index and a trailer. Exit 0: nothing was lost;\n"
                              "1: a damaged tail was cut and the intact prefix kept; 3: nothing recoverable.");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_flag("-n,--dry-run", a->dry_run, "Say what would be done; change nothing");
    commands.push_back({c, [a] { return run_recover(*a); }});
  }
  {
    auto a = std::make_shared<ExportArgs>();
    CLI::App* c = add_command(app, "export",
                              "Write the state at an epoch as raw page files (page-<id>.bin) plus manifest.json",
                              "  mmsb-replay export run.mmsb state-at-40 --epoch 40", a->common,
                              "Writes OUT_DIR/page-<id>.bin (the raw bytes) for every page that exists at\n"
                              "the epoch, and OUT_DIR/manifest.json: each page's id, name, size, version,\n"
                              "file and XXH3-64 hash, and the state hash. OUT_DIR must not exist, or be an\n"
                              "empty directory.");
    add_recording_arg(c, "DIR", &a->dir);
    c->add_option("OUT_DIR", a->out, "Directory to create (or an empty one)")
        ->required()
        ->check(nonempty_arg("the export directory"));
    c->add_option("-e,--epoch", a->epoch, "Epoch (default: last)")->check(nonempty_arg("an epoch"));
    commands.push_back({c, [a] { return run_export(*a); }});
  }
}

}  // namespace mmsb::cli
