// mmsb-replay: what the subcommands share. The program only parses
// arguments and prints; every answer comes from mmsb::replay.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "mmsb/replay/index.h"
#include "mmsb/replay/recording.h"

namespace mmsb::cli {

// Exit codes (docs/CLI.md). recover uses 1 for "a damaged tail was cut".
enum Exit : int {
  kExitOk = 0,
  kExitFailed = 1,    // verify found a problem; compare found a divergence or a prefix
  kExitUsage = 2,     // bad flags or arguments, an epoch or page the recording does not have
  kExitBadInput = 3,  // missing, unreadable or corrupt input; an I/O error
};

// Thrown by a subcommand; main() prints "mmsb-replay: <message>" (and the hint
// on a second line) on stderr and exits with `code`.
struct Error {
  int code;
  std::string message;
  std::string hint;  // what the user can do; may be empty
};

// Flags every subcommand has.
struct Common {
  bool json = false;   // one JSON document on stdout
  bool quiet = false;  // no progress bar, no warnings
};

// A parsed subcommand and the code that runs it.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Registers info, log, cat, diff and deps (commands_read.cc) and verify,
// compare, recover and export (commands_tools.cc).
void add_read_commands(CLI::App& app, std::vector<Command>& commands);
void add_tool_commands(CLI::App& app, std::vector<Command>& commands);

// ---- shared by the subcommands ----

// Argument checks, for ->check(): a count or offset is digits only (CLI11
// would wrap -1 round to 2^64-1); an epoch or a path is never empty.
CLI::Validator unsigned_arg();
// A byte offset or count: decimal, or hex with 0x (as hex dumps print offsets).
CLI::Validator byte_arg();
CLI::Validator nonempty_arg(const std::string& what);
// A required positional naming a recording directory ("DIR", "A", "B"):
// an empty one is a usage error.
CLI::Option* add_recording_arg(CLI::App* c, const std::string& name, std::string* to,
                               const std::string& help = "Recording directory");

// A subcommand with its description, the common flags and a footer: `details`
// (if any), then the example.
CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description,
                      const std::string& example, Common& common, const std::string& details = "");

// Opens a recording. Exit 3 with the library's message when it cannot be
// opened; a recording opened with damage gets a warning on stderr (unless
// quiet) and is used up to its intact end.
std::unique_ptr<replay::Recording> open_recording(const std::string& dir, const Common& common,
                                                  bool warn_damage = true);
// What the user can do about a recording that cannot be opened (`s` from
// Recording::open or recover); "" when there is nothing to say.
std::string open_hint(const Status& s);
// Decodes every delta, with a progress bar on a terminal. Exit 3 on bad
// frames; a damaged frame that ends the history early (a bad payload in a
// closed segment) gets a warning on stderr (unless quiet).
std::unique_ptr<replay::Index> build_index(const replay::Recording& rec, const Common& common);
// What ended the readable history early ("" if nothing did): damage met
// while decoding the deltas (it comes first), else damage met at open.
// What to do about damage in `rec`: "run 'mmsb-replay recover DIR' to cut the
// damaged tail", or, while a process is still writing it, to wait for it.
std::string damage_advice(const replay::Recording& rec);
std::string damage_text(const replay::Recording& rec, const replay::Index& index);
// An epoch a command reads (argument `what`, given as `text`) must come
// before such damage: exit 3 naming the file and offset otherwise. `last`
// (or no epoch given: text "") means the last readable epoch, which damage
// found while decoding can bring before the recording's own last epoch:
// returns the epoch to read.
Epoch require_readable(const replay::Index& index, Epoch epoch, const std::string& text, const std::string& what);

// Epoch arguments: a decimal number, or `start` (the first known state),
// `first` (the first delta) or `last` (the last delta). Outside
// [lo, hi] -> exit 2 naming the valid range.
Epoch parse_epoch(const std::string& text, const replay::Recording& rec, Epoch lo, Epoch hi,
                  const std::string& what);

// Page arguments: a name, or a decimal id. By default an exact name match
// wins over an id; `by` forces one reading. Unknown -> exit 2.
enum class PageBy { kAuto, kId, kName };
PageId resolve_page(const replay::Recording& rec, const std::string& text, PageBy by = PageBy::kAuto);

// "0 'alpha'", or "3" for an unnamed page; unprintable name bytes as \xNN.
std::string page_label(const replay::Recording& rec, PageId id);
const std::string& page_name(const replay::Recording& rec, PageId id);

// Writes `text` to stdout (buffered; main() checks the final flush). Exit 3
// if stdout fails.
void print(const std::string& text);

}  // namespace mmsb::cli
