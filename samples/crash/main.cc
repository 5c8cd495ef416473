// mmsb-sample-crash: a program that records, is killed, and comes back.
//
// A small bank. 'accounts' holds the balances (int64 cents); every step moves
// money between accounts with transfers drawn from a PRNG whose state is kept
// in the 'journal' page, so the whole program state lives in the bus: a run is
// a pure function of its pages, and a run resumed from recovered pages goes on
// exactly as the original would have. 'branches' (per-branch totals and the
// grand total) is derived from 'accounts' through the dependency graph; money
// is only moved, never created, so the grand total never changes.
//
// The walk-through (samples/README.md shows each command's output):
//
//   mmsb-sample-crash --steps 200 --record bank.mmsb --crash-at 137   # dies by SIGKILL
//   mmsb-replay recover bank.mmsb         # cuts a torn tail, closes the segment
//   mmsb-sample-crash --steps 200 --resume bank.mmsb --record bank2.mmsb
//
// The recorder is flush()ed every --flush-every steps; each flush prints
// "durable: step S, epoch E": everything up to epoch E is on disk and survives
// the kill. Deltas after it may survive too (the recorder writes on its own
// every 100 ms), but no promise is made about them.
//
// Each step writes 'accounts' (whose change derives 'branches') and then
// 'journal'. The journal's last delta therefore marks the last *complete*
// step: --resume restores the state at that epoch and drops the deltas of a
// step the crash cut in half.
#include <signal.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <mmsb/capture/recorder.h>
#include <mmsb/mmsb.h>
#include <mmsb/replay/index.h>
#include <mmsb/replay/recording.h>
#include <mmsb/replay/tools.h>

#include "sample.h"

namespace {

// ---- what the pages hold ----
struct Journal {
  uint64_t step;       // steps completed
  uint64_t rng;        // the transfer generator's state after that step
  uint64_t transfers;  // transfers made so far
  int64_t money;       // all the money in the bank (never changes)
};
constexpr int kBranches = 16;  // account i belongs to branch i % kBranches
struct Branches {
  int64_t total[kBranches];
  int64_t all;
};
constexpr int64_t kOpeningBalance = 100000;  // 1000.00 per account

using sample::bytes_of;
using sample::check;
using sample::fail;

// splitmix64: the whole generator state is one integer, kept in 'journal'.
uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The derived page: a pure function of the balances.
Branches sum_branches(std::span<const std::byte> accounts_page) {
  Branches b{};
  const size_t n = accounts_page.size() / sizeof(int64_t);
  for (size_t i = 0; i < n; ++i) {
    int64_t balance;
    std::memcpy(&balance, accounts_page.data() + i * sizeof balance, sizeof balance);
    b.total[i % kBranches] += balance;
    b.all += balance;
  }
  return b;
}

struct Pages {
  mmsb::PageId journal, accounts, branches;
};

// A fresh bank: `accounts` accounts with the opening balance.
Pages open_bank(mmsb::Bus& bus, uint32_t accounts) {
  Pages p;
  p.journal = check(bus.create_page(sizeof(Journal), "journal"), "create_page");
  p.accounts = check(bus.create_page(uint64_t{accounts} * sizeof(int64_t), "accounts"), "create_page");
  p.branches = check(bus.create_page(sizeof(Branches), "branches"), "create_page");
  return p;
}

// The state of a crashed run: the last complete step of `dir`, recreated in
// `bus` (which must hold no pages) by replay::restore. Returns the pages.
Pages resume_bank(mmsb::Bus& bus, const std::string& dir, const std::string& new_recording) {
  std::unique_ptr<mmsb::replay::Recording> rec = check(mmsb::replay::Recording::open(dir), "opening the recording");
  if (!rec->damage().ok())
    std::printf("note: %s has a damaged tail (%s); resuming from its intact part -- "
                "`mmsb-replay recover %s` cuts the damage off for good\n",
                dir.c_str(), rec->damage().to_string().c_str(), dir.c_str());
  std::unique_ptr<mmsb::replay::Index> index = check(mmsb::replay::Index::build(*rec), "reading the recording");

  const mmsb::PageId journal = rec->page_named("journal").value_or(mmsb::kNoPage);
  if (journal == mmsb::kNoPage) fail(dir + " is not a recording of mmsb-sample-crash: it has no page 'journal'");
  // The journal is written last in every step: its last delta ends the last
  // complete step. Later deltas belong to a step the crash interrupted.
  const std::span<const mmsb::Epoch> journal_epochs = index->page_epochs(journal);
  if (journal_epochs.empty())
    fail(dir + " holds no complete step (the run died before its first step was recorded): start afresh");
  const mmsb::Epoch epoch = journal_epochs.back();
  const uint64_t dropped = index->delta_count() == 0 ? 0 : index->last_epoch() - epoch;

  check(mmsb::replay::restore(*index, epoch, bus), "restoring the state");
  const mmsb::Epoch restored_to = bus.epoch();
  Pages p;
  p.journal = check(bus.find("journal"), "find 'journal'");
  p.accounts = check(bus.find("accounts"), "find 'accounts'");
  p.branches = check(bus.find("branches"), "find 'branches'");
  Journal j;
  check(bus.read(p.journal, 0, std::as_writable_bytes(std::span(&j, 1))), "read 'journal'");
  const std::string target = new_recording.empty() ? "this bus" : new_recording;
  std::printf("restored step %" PRIu64 ": the state at epoch %" PRIu64 " of %s, recreated as epochs 1..%" PRIu64
              " of %s\n",
              j.step, epoch, dir.c_str(), restored_to, target.c_str());
  if (dropped > 0)
    std::printf("  (the %" PRIu64 " delta(s) after it belong to step %" PRIu64
                ", which the crash interrupted: dropped)\n",
                dropped, j.step + 1);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A bank whose state lives in MMSB pages, recorded as it runs. Kill it (or let "
               "--crash-at kill it), recover the recording with `mmsb-replay recover`, and resume "
               "from the recovered state with --resume."};
  uint64_t steps = 200;
  uint32_t accounts = 4096;
  uint32_t transfers = 64;
  uint64_t seed = 42;
  uint64_t flush_every = 10;
  std::string crash_at;
  int step_delay_ms = 0;
  std::string record, resume;
  app.add_option("--steps", steps, "Run until the bank has completed this many steps")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--accounts", accounts, "Accounts in a new bank")
      ->check(CLI::Range(2u, 1u << 24))
      ->capture_default_str();
  app.add_option("--transfers", transfers, "Transfers per step")->check(CLI::Range(1u, 1u << 24))->capture_default_str();
  app.add_option("--seed", seed, "Seed of the transfer generator of a new bank")->capture_default_str();
  app.add_option("--flush-every", flush_every, "flush() the recorder every N steps (0: never)")
      ->capture_default_str();
  app.add_option("--crash-at", crash_at, "Kill this process with SIGKILL right after step STEP ('random': any step)")
      ->type_name("STEP|random");
  app.add_option("--step-delay-ms", step_delay_ms, "Sleep this long after every step (time to kill it by hand)")
      ->check(CLI::Range(0, 60000));
  app.add_option("--record", record, "Record the run into this directory (must not exist or be empty)");
  app.add_option("--resume", resume, "Continue from the last complete step of this (recovered) recording")
      ->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);
  // Line-buffered even into a file or pipe: a SIGKILL loses unflushed stdio.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  uint64_t crash_step = 0;  // 0: no crash
  if (crash_at == "random") {
    std::random_device entropy;
    crash_step = std::uniform_int_distribution<uint64_t>(1, steps)(entropy);
  } else if (!crash_at.empty()) {
    char* end = nullptr;
    crash_step = std::strtoull(crash_at.c_str(), &end, 10);
    if (*end != '\0' || crash_step == 0) fail("--crash-at wants a step number >= 1 or 'random', not '" + crash_at + "'");
  }

  mmsb::Bus bus;
  // Record from epoch 0, before any page exists: a resumed run's new
  // recording then starts with the restored state as its first deltas.
  std::unique_ptr<mmsb::capture::Recorder> recorder;
  if (!record.empty()) {
    mmsb::capture::RecorderOptions options;
    options.labels = {{"sample", "crash"}, {"steps", std::to_string(steps)}};
    if (!resume.empty()) options.labels["resumed_from"] = resume;
    recorder = check(mmsb::capture::Recorder::start(bus, record, options), "Recorder::start");
    std::printf("recording into %s\n", record.c_str());
  }

  const Pages pages = resume.empty() ? open_bank(bus, accounts) : resume_bank(bus, resume, record);
  std::vector<int64_t> balances(bus.page_bytes(pages.accounts).size() / sizeof(int64_t));
  Journal journal{};
  if (resume.empty()) {
    std::fill(balances.begin(), balances.end(), kOpeningBalance);
    journal = Journal{0, seed, 0, kOpeningBalance * static_cast<int64_t>(balances.size())};
  } else {
    check(bus.read(pages.accounts, 0, std::as_writable_bytes(std::span(balances))), "read 'accounts'");
    check(bus.read(pages.journal, 0, std::as_writable_bytes(std::span(&journal, 1))), "read 'journal'");
  }

  // 'branches' is derived from 'accounts' (added after a restore, so that the
  // restored branch totals are taken as they were recorded).
  check(bus.add_dependency(pages.accounts, pages.branches,
                           [](mmsb::UpdateContext& ctx) { return ctx.assign(bytes_of(sum_branches(ctx.source_bytes()))); }),
        "add_dependency");

  // One step: apply the transfers to our copy, assign it (the diff engine
  // records only the balances that moved; 'branches' follows), then the
  // journal, which completes the step.
  auto publish = [&]() {
    check(bus.assign(pages.accounts, std::as_bytes(std::span(balances))), "assign 'accounts'");
    check(bus.write(pages.journal, 0, bytes_of(journal)), "write 'journal'");
  };
  // A durable point: prints "durable: step S, epoch E" once every delta up
  // to epoch E is in the file (and so survives a kill).
  auto make_durable = [&]() {
    const mmsb::Epoch epoch = bus.epoch();
    check(recorder->flush(), "Recorder::flush");
    std::printf("durable: step %" PRIu64 ", epoch %" PRIu64 "\n", journal.step, epoch);
  };
  std::printf("bank: %zu accounts, %" PRId64 ".%02" PRId64 " in total, step %" PRIu64 " of %" PRIu64 "\n",
              balances.size(), journal.money / 100, journal.money % 100, journal.step, steps);
  if (resume.empty()) {
    publish();  // step 0: the opening balances
    if (recorder && flush_every > 0) make_durable();
  }

  const uint64_t n = balances.size();
  while (journal.step < steps) {
    for (uint32_t t = 0; t < transfers; ++t) {
      const uint64_t from = next_random(&journal.rng) % n, to = next_random(&journal.rng) % n;
      const int64_t amount = static_cast<int64_t>(next_random(&journal.rng) % (balances[from] / 4 + 1));
      balances[from] -= amount;
      balances[to] += amount;
    }
    journal.transfers += transfers;
    journal.step += 1;
    publish();

    if (recorder && flush_every > 0 && journal.step % flush_every == 0) make_durable();
    if (journal.step == crash_step) {
      std::printf("crash: SIGKILL at step %" PRIu64 ", epoch %" PRIu64 "\n", journal.step, bus.epoch());
      std::fflush(stdout);
      ::raise(SIGKILL);  // no destructor, no stop(): the recording is left as a crash leaves it
    }
    if (step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms));
  }

  if (recorder) {
    check(recorder->stop(), "Recorder::stop");
    std::printf("recorded %" PRIu64 " deltas under %s\n", recorder->stats().deltas, record.c_str());
  }
  // The claims: money was only moved, and the derived page agrees.
  const int64_t sum = std::accumulate(balances.begin(), balances.end(), int64_t{0});
  Branches branches;
  check(bus.read(pages.branches, 0, std::as_writable_bytes(std::span(&branches, 1))), "read 'branches'");
  const bool ok = sum == journal.money && branches.all == journal.money;
  std::printf("end: step %" PRIu64 ", %" PRIu64 " transfers, epoch %" PRIu64 ", state hash %016" PRIx64
              "; money %s\n",
              journal.step, journal.transfers, bus.epoch(), bus.state_hash(),
              ok ? "conserved" : "NOT conserved");
  return ok ? 0 : 1;
}
