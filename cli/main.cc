// mmsb-replay: inspect, check, compare and repair MMSB recordings from the
// command line (docs/CLI.md).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli.h"
#include "mmsb/format.h"
#include "mmsb/replay/recording.h"
#include "mmsb/replay/text.h"

namespace {

constexpr const char* kFooter = R"(Epochs: a number, or start (the first known state), first (the first delta) or
last (the last delta). Pages: a name or a numeric id (a name match wins).

Exit codes:
  0  ok (recover: nothing was lost)
  1  verify found a problem; compare found a divergence or a prefix;
     recover cut a damaged tail and kept the intact prefix
  2  usage: bad flags or arguments, an epoch or page the recording does not have,
     an export target that is not empty
  3  missing, unreadable or corrupt input, or an I/O error
     (recover: nothing was recoverable)

Run 'mmsb-replay SUBCOMMAND --help' for its options and an example.)";

}  // namespace

int main(int argc, char** argv) {
  using namespace mmsb::cli;
  mmsb::replay::raise_open_file_limit();  // a recording keeps one descriptor per segment
  CLI::App app{"mmsb-replay: inspect, check, compare and repair MMSB recordings."};
  app.name("mmsb-replay");
  app.set_version_flag("--version", std::string("mmsb-replay " MMSB_VERSION " (recording format ") +
                                        std::to_string(mmsb::format::kMajor) + "." +
                                        std::to_string(mmsb::format::kMinor) + ")");
  app.require_subcommand(1);
  app.footer(kFooter);

  std::vector<Command> commands;
  add_read_commands(app, commands);
  add_tool_commands(app, commands);

  // CLI11 would call a misspelled command "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const Command& c : commands) {
      known |= c.app->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + c.app->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "mmsb-replay: unknown command '%s'\n  the commands are %s; run 'mmsb-replay --help'\n",
                   mmsb::replay::printable(argv[1]).c_str(), names.c_str());
      return kExitUsage;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string where = "mmsb-replay";
    for (CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    std::fprintf(stderr, "mmsb-replay: %s\n  run '%s --help' for usage\n", e.what(), where.c_str());
    return kExitUsage;
  }

  try {
    int code = kExitUsage;  // unreachable: one subcommand is required
    for (const Command& c : commands)
      if (c.app->parsed()) code = c.run();
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) throw Error{kExitBadInput, "cannot write to stdout", ""};
    return code;
  } catch (const Error& e) {
    std::fflush(stdout);  // what was printed comes before the error in a log that holds both
    std::fprintf(stderr, "mmsb-replay: %s\n", e.message.c_str());
    if (!e.hint.empty()) std::fprintf(stderr, "  %s\n", e.hint.c_str());
    return e.code;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "mmsb-replay: %s\n", e.what());
    return kExitBadInput;
  }
}
