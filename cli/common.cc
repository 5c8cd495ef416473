// What the subcommands share: opening recordings, epoch and page arguments.
#include <cinttypes>
#include <cstdio>

#include "cli.h"
#include "output.h"

namespace mmsb::cli {

using replay::Index;
using replay::Recording;

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description,
                      const std::string& example, Common& common, const std::string& details) {
  CLI::App* sub = app.add_subcommand(name, description);
  sub->add_flag("--json", common.json, "Print one JSON document on stdout instead of text");
  sub->add_flag("-q,--quiet", common.quiet, "No progress bar and no warnings on stderr");
  sub->footer((details.empty() ? "" : details + "\n\n") + "Example:\n" + example);
  return sub;
}

CLI::Validator unsigned_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
          return "'" + printable(s) + "' is not a whole number >= 0";
        return "";
      },
      "N");
}

// Rewrites a 0x value to decimal, so the option's own parse takes it.
CLI::Validator byte_arg() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const std::optional<uint64_t> v = mmsb::replay::parse_offset(s);
        if (!v) return "'" + printable(s) + "' is not a byte offset or count (decimal, or hex with 0x)";
        s = std::to_string(*v);
        return "";
      },
      "N|0xN");
}

CLI::Validator nonempty_arg(const std::string& what) {
  return CLI::Validator([what](std::string& s) -> std::string { return s.empty() ? what + " cannot be empty" : ""; },
                        "");
}

CLI::Option* add_recording_arg(CLI::App* c, const std::string& name, std::string* to, const std::string& help) {
  return c->add_option(name, *to, help)->required()->check(nonempty_arg("a recording path"));
}

namespace {

std::string quoted(const std::string& s) { return "'" + printable(s) + "'"; }

}  // namespace

std::string open_hint(const Status& s) {
  std::string hint;
  switch (s.code()) {
    case Code::kNotFound: hint = "check the path: a recording is a directory of seg-NNNNNN.tlog files"; break;
    case Code::kUnsupported:
      hint = s.message().find("is newer than this reader") != std::string::npos
                 ? "this mmsb-replay is too old for the recording's format"
                 : "no MMSB writer produces this format version: the file header is damaged or not MMSB's";
      break;
    case Code::kCorruption:
      // open() fails only when nothing can be read from the start.
      hint = s.message().find("holds no segment file") != std::string::npos ||
                     s.message().find("not a recording directory") != std::string::npos
                 ? "a recording is a directory of seg-NNNNNN.tlog files, as mmsb::capture::Recorder writes"
                 : "the recording cannot be read from its start, so nothing in it can be replayed or recovered "
                   "(its files are left as they are)";
      break;
    default: break;
  }
  return hint;
}

std::unique_ptr<Recording> open_recording(const std::string& dir, const Common& common, bool warn_damage) {
  auto rec = Recording::open(dir);
  if (!rec.ok())
    throw Error{kExitBadInput, "cannot open recording " + quoted(dir) + ": " + rec.status().to_string(),
                open_hint(rec.status())};
  std::unique_ptr<Recording> r = std::move(rec).value();
  if (warn_damage && !common.quiet && !r->damage().ok()) {
    std::fprintf(stderr, "mmsb-replay: warning: %s is %s, using epochs up to %" PRIu64 ": %s\n  %s\n",
                 quoted(dir).c_str(), r->live() ? "still being recorded" : "damaged", r->last_epoch(),
                 r->damage().to_string().c_str(), damage_advice(*r).c_str());
  }
  return r;
}

std::unique_ptr<Index> build_index(const Recording& rec, const Common& common) {
  ProgressBar bar("reading " + rec.dir().string(), stderr_is_terminal() && !common.json && !common.quiet);
  replay::IndexOptions options;
  options.progress = bar.callback();
  // No checkpoints but the start state: every command reads pages at one
  // or two epochs (Index::page_at and diff apply only those pages' deltas)
  // or walks forward (compare's StateViews), so more would only cost
  // memory -- up to 512 MiB -- and the time to copy them.
  options.checkpoint_bytes = 0;
  auto index = Index::build(rec, options);
  bar.done();
  if (!index.ok()) {
    const std::string dir = rec.dir().string();
    throw Error{kExitBadInput, "cannot read " + quoted(dir) + ": " + index.status().to_string(),
                "run 'mmsb-replay verify " + dir + "' for a full check, 'mmsb-replay recover " + dir +
                    "' to keep the intact prefix"};
  }
  std::unique_ptr<Index> ix = std::move(index).value();
  // A delta frame of a closed segment is checked only when it is decoded, so
  // damage there shows up here rather than at open.
  if (!ix->damage().ok() && !common.quiet) {
    const std::string dir = rec.dir().string();
    std::fprintf(stderr, "mmsb-replay: warning: %s is %s, only epochs up to %" PRIu64 " are readable: %s\n  %s\n",
                 quoted(dir).c_str(), rec.live() ? "still being recorded" : "damaged", ix->last_epoch(),
                 ix->damage().to_string().c_str(), damage_advice(rec).c_str());
  }
  return ix;
}

std::string damage_advice(const Recording& rec) {
  const std::string dir = rec.dir().string();
  if (rec.live())
    return "a process is still writing it (it holds the recording's writer lock): its last frames may be in "
           "flight; run this again once the program has ended, and never 'mmsb-replay recover' it while it runs";
  if (!rec.missing_end().ok())
    return "copy the missing segment files back if they exist elsewhere; otherwise run 'mmsb-replay recover " + dir +
           "' to end the recording where its files end";
  return "run 'mmsb-replay recover " + dir + "' to cut the damaged tail";
}

std::string damage_text(const Recording& rec, const Index& index) {
  if (!index.damage().ok()) return index.damage().to_string();
  return rec.damage().ok() ? "" : rec.damage().to_string();
}

Epoch require_readable(const Index& index, Epoch epoch, const std::string& text, const std::string& what) {
  if (epoch <= index.last_epoch() || index.damage().ok()) return epoch;
  if (text.empty() || text == "last") return index.last_epoch();  // build_index's warning says why
  const std::string dir = index.recording().dir().string();
  throw Error{kExitBadInput,
              what + " " + std::to_string(epoch) + " lies past damage in " + quoted(dir) + ": " +
                  index.damage().to_string(),
              "epochs up to " + std::to_string(index.last_epoch()) + " are readable; " +
                  damage_advice(index.recording())};
}

Epoch parse_epoch(const std::string& text, const Recording& rec, Epoch lo, Epoch hi, const std::string& what) {
  const std::string range = "the recording has epochs " + std::to_string(rec.start_epoch()) + ".." +
                            std::to_string(rec.last_epoch());
  Epoch e = 0;
  if (text == "start") {
    e = rec.start_epoch();
  } else if (text == "first") {
    if (rec.delta_count() == 0) throw Error{kExitUsage, what + " 'first': the recording has no deltas", ""};
    e = rec.first_delta_epoch();
  } else if (text == "last") {
    e = rec.last_epoch();
  } else {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19)
      throw Error{kExitUsage, what + " '" + printable(text) + "' is not an epoch",
                  "give a number, or start, first or last (" + range + ")"};
    e = std::stoull(text);
  }
  if (e < lo || e > hi) {
    throw Error{kExitUsage,
                what + " " + std::to_string(e) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi),
                range};
  }
  return e;
}

PageId resolve_page(const Recording& rec, const std::string& text, PageBy by) {
  const auto& pages = rec.pages();
  if (by != PageBy::kId)
    if (std::optional<PageId> id = rec.page_named(text)) return *id;
  const bool digits = !text.empty() && text.size() <= 10 && text.find_first_not_of("0123456789") == std::string::npos;
  if (by != PageBy::kName && digits) {
    const uint64_t id = std::stoull(text);
    if (id < pages.size()) return static_cast<PageId>(id);
    throw Error{kExitUsage,
                "page " + text + " does not exist: " +
                    (pages.empty() ? std::string("the recording has no pages")
                                   : "the recording has pages 0.." + std::to_string(pages.size() - 1)),
                "'mmsb-replay info " + rec.dir().string() + " --pages' lists them"};
  }
  if (by == PageBy::kId) throw Error{kExitUsage, quoted(text) + " is not a page id (a number)", ""};
  throw Error{kExitUsage, "no page named " + quoted(text) + " in " + quoted(rec.dir().string()),
              "'mmsb-replay info " + rec.dir().string() + " --pages' lists the pages"};
}

const std::string& page_name(const Recording& rec, PageId id) {
  static const std::string kNone;
  return id < rec.pages().size() ? rec.pages()[id].name : kNone;
}

std::string page_label(const Recording& rec, PageId id) {
  if (id == kNoPage) return "-";
  const std::string& name = page_name(rec, id);
  return name.empty() ? std::to_string(id) : std::to_string(id) + " " + quoted(name);
}

void print(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size())
    throw Error{kExitBadInput, "cannot write to stdout", ""};
}

}  // namespace mmsb::cli
