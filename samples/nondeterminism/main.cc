// mmsb-sample-nondeterminism: a physics program with a nondeterminism bug,
// and how a recording comparison finds it.
//
// Four towers of dominoes stand on the ground; at --storm-step a storm begins
// and the wind pushes every body over. The program has a "weather" thread that
// animates the wind for the renderer and the sound, in real time. The physics
// is supposed to compute the wind from *simulated* time, so that a run is a
// pure function of its inputs. With --nondeterministic it makes a mistake real
// programs make: it reads the weather thread's current value instead. That
// value depends on how far the other thread has got in wall-clock time when
// the physics asks (a race in the logical sense, though not a data race in the
// C++ sense: the value is a std::atomic), so two runs diverge -- every time,
// and from the storm's first step on.
//
//   mmsb-sample-nondeterminism --nondeterministic --record a.mmsb
//   mmsb-sample-nondeterminism --nondeterministic --record b.mmsb
//   mmsb-replay compare a.mmsb b.mmsb      # diverged: epoch, page 'bodies', bytes
//
// samples/README.md walks from that report to the line below that causes it
// (search for "THE BUG").
//
// Pages (little-endian, packed):
//   'world'    WorldHeader: step, simulated time, the wind used, body counts
//   'bodies'   BodyState per body: x, y, angle, vx, vy, omega (float)
//   'summary'  Summary, derived from 'bodies': moving bodies, kinetic energy,
//              how far right the debris got
#include <box2d/box2d.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numbers>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <mmsb/capture/recorder.h>
#include <mmsb/mmsb.h>

#include "sample.h"

namespace {

// ---- what the pages hold ----
struct WorldHeader {
  uint64_t step;       // steps simulated so far
  double time;         // simulated seconds
  float wind_x;        // the wind applied in this step (m/s^2, i.e. N per kg)
  float wind_y;
  uint32_t bodies;
  uint32_t awake;
};
struct BodyState {
  float x, y, angle;    // offsets 0, 4, 8 in a 24-byte record
  float vx, vy, omega;  // offsets 12, 16, 20
};
static_assert(sizeof(BodyState) == 24, "BodyState is packed: 6 floats");
struct Summary {
  uint32_t moving;   // bodies faster than 1 cm/s
  float kinetic;     // total kinetic energy (J)
  float front;       // largest x of any body: how far the debris got (m)
  float top;         // largest y of any body: what still stands (m)
};

constexpr float kDt = 1.0f / 60.0f;
constexpr int kVelocityIterations = 8;
constexpr int kPositionIterations = 3;

using sample::bytes_of;
using sample::check;

// The storm's wind at time t (seconds since the storm began): a steady push
// to the right, slow gusts and a fast flutter.
b2Vec2 wind_at(double t) {
  const double gust = 2.0 * std::sin(1.3 * t);
  const double flutter = 0.5 * std::sin(2.0 * std::numbers::pi * 50.0 * t);
  return b2Vec2(static_cast<float>(4.0 + gust + flutter), static_cast<float>(0.3 * gust));
}

// The weather thread: animates the wind for the renderer and the sound at its
// own pace, in wall-clock time, and publishes the current value.
class Weather {
 public:
  Weather() : start_(std::chrono::steady_clock::now()), thread_([this] { run(); }) {}
  ~Weather() {
    stop_.store(true);
    thread_.join();
  }
  // Blocks until the first value is published (the subsystem has started).
  void wait_ready() const {
    while (!ready_.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  // The wind right now, in wall-clock time.
  b2Vec2 current() const { return b2Vec2(x_.load(), y_.load()); }

 private:
  void run() {
    while (!stop_.load()) {
      const std::chrono::duration<double> t = std::chrono::steady_clock::now() - start_;
      const b2Vec2 w = wind_at(t.count());
      x_.store(w.x);
      y_.store(w.y);
      ready_.store(true, std::memory_order_release);
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // ~5 kHz animation
    }
  }
  std::chrono::steady_clock::time_point start_;
  std::atomic<float> x_{0.0f}, y_{0.0f};
  std::atomic<bool> ready_{false}, stop_{false};
  std::thread thread_;  // last: starts once the members above exist
};

struct Scene {
  std::unique_ptr<b2World> world;
  std::vector<b2Body*> bodies;  // the order of the 'bodies' page
};

// Four towers, 5 m apart, each two columns of `height` upright dominoes
// (0.5 m x 1.6 m): they stand in calm air and topple in the storm.
Scene build_scene(int height) {
  Scene s;
  s.world = std::make_unique<b2World>(b2Vec2(0.0f, -10.0f));
  b2BodyDef ground_def;
  ground_def.position.Set(0.0f, -1.0f);
  b2Body* ground = s.world->CreateBody(&ground_def);
  b2PolygonShape ground_box;
  ground_box.SetAsBox(40.0f, 1.0f);
  ground->CreateFixture(&ground_box, 0.0f);

  b2PolygonShape domino;
  domino.SetAsBox(0.25f, 0.8f);
  b2FixtureDef fixture;
  fixture.shape = &domino;
  fixture.density = 1.0f;
  fixture.friction = 0.5f;
  for (int tower = 0; tower < 4; ++tower) {
    for (int level = 0; level < height; ++level) {
      b2BodyDef def;
      def.type = b2_dynamicBody;
      for (int side = 0; side < 2; ++side) {
        def.position.Set(-7.5f + 5.0f * static_cast<float>(tower) + (side ? 0.6f : -0.6f),
                         0.8f + 1.65f * static_cast<float>(level));
        b2Body* body = s.world->CreateBody(&def);
        body->CreateFixture(&fixture);
        s.bodies.push_back(body);
      }
    }
  }
  return s;
}

uint32_t capture_bodies(const Scene& s, std::vector<BodyState>* out) {
  uint32_t awake = 0;
  for (size_t i = 0; i < s.bodies.size(); ++i) {
    const b2Body* b = s.bodies[i];
    const b2Vec2 p = b->GetPosition(), v = b->GetLinearVelocity();
    (*out)[i] = BodyState{p.x, p.y, b->GetAngle(), v.x, v.y, b->GetAngularVelocity()};
    awake += b->IsAwake() ? 1 : 0;
  }
  return awake;
}

// The derived page: a pure function of the 'bodies' bytes and the masses.
Summary summarize(std::span<const std::byte> bodies_page, const std::vector<float>& mass) {
  Summary s{0, 0.0f, -1e30f, -1e30f};
  for (size_t i = 0; i < mass.size(); ++i) {
    BodyState b;
    std::memcpy(&b, bodies_page.data() + i * sizeof(BodyState), sizeof b);
    const float speed2 = b.vx * b.vx + b.vy * b.vy;
    s.moving += speed2 > 1e-4f ? 1 : 0;
    s.kinetic += 0.5f * mass[i] * speed2;
    s.front = std::max(s.front, b.x);
    s.top = std::max(s.top, b.y);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Dominoes in a storm. With --nondeterministic the physics reads the wind from a "
               "thread that animates it in real time, so two runs diverge; record two runs with "
               "--record and let `mmsb-replay compare` find where."};
  int steps = 120;
  int height = 3;
  int storm_step = 30;
  bool nondeterministic = false;
  std::string record;
  app.add_option("--steps", steps, "Physics steps of 1/60 s to simulate")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--height", height, "Levels per tower (2 dominoes each)")
      ->check(CLI::Range(1, 40))
      ->capture_default_str();
  app.add_option("--storm-step", storm_step, "Step at which the storm begins")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_flag("--nondeterministic", nondeterministic,
               "Take the wind from the weather thread (wall-clock time) instead of simulated time");
  app.add_option("--record", record, "Record the run into this directory (must not exist or be empty)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  Scene scene = build_scene(height);
  const uint32_t n = static_cast<uint32_t>(scene.bodies.size());
  std::vector<float> mass(n);
  for (uint32_t i = 0; i < n; ++i) mass[i] = scene.bodies[i]->GetMass();
  Weather weather;  // runs in both modes; only --nondeterministic lets it reach the physics

  mmsb::Bus bus;
  const mmsb::PageId world_page = check(bus.create_page(sizeof(WorldHeader), "world"), "create_page");
  const mmsb::PageId bodies_page = check(bus.create_page(n * sizeof(BodyState), "bodies"), "create_page");
  const mmsb::PageId summary_page = check(bus.create_page(sizeof(Summary), "summary"), "create_page");
  std::printf("scene: %u dominoes in 4 towers; the storm begins at step %d; wind from %s\n", n, storm_step,
              nondeterministic ? "the weather thread (wall-clock time: NONDETERMINISTIC)"
                               : "simulated time (deterministic)");

  std::unique_ptr<mmsb::capture::Recorder> recorder;
  if (!record.empty()) {
    mmsb::capture::RecorderOptions options;
    options.labels = {{"sample", "nondeterminism"},
                      {"mode", nondeterministic ? "nondeterministic" : "deterministic"},
                      {"steps", std::to_string(steps)},
                      {"storm_step", std::to_string(storm_step)}};
    recorder = check(mmsb::capture::Recorder::start(bus, record, options), "Recorder::start");
    std::printf("recording into %s\n", record.c_str());
  }

  check(bus.add_dependency(bodies_page, summary_page,
                           [&mass](mmsb::UpdateContext& ctx) {
                             return ctx.assign(bytes_of(summarize(ctx.source_bytes(), mass)));
                           }),
        "add_dependency");

  std::vector<BodyState> buffer(n);
  WorldHeader header{0, 0.0, 0.0f, 0.0f, n, 0};
  auto publish = [&](uint64_t step, b2Vec2 wind) {
    header.step = step;
    header.time = static_cast<double>(step) * kDt;
    header.wind_x = wind.x;
    header.wind_y = wind.y;
    header.awake = capture_bodies(scene, &buffer);
    check(bus.assign(bodies_page, std::as_bytes(std::span(buffer))), "assign bodies");
    check(bus.write(world_page, 0, bytes_of(header)), "write world");  // last: the step is complete
  };
  publish(0, b2Vec2(0.0f, 0.0f));

  for (int step = 1; step <= steps; ++step) {
    b2Vec2 wind(0.0f, 0.0f);
    if (step >= storm_step) {
      if (step == storm_step) {
        std::printf("step %d: the storm begins (epoch %" PRIu64 " so far)\n", step, bus.epoch());
        weather.wait_ready();
      }
      const double storm_time = static_cast<double>(step - storm_step) * kDt;
      // THE BUG (with --nondeterministic): the weather thread's current value
      // depends on wall-clock time, i.e. on when this line happens to run.
      // The deterministic branch derives the same wind from simulated time.
      wind = nondeterministic ? weather.current() : wind_at(storm_time);
      for (b2Body* b : scene.bodies) b->ApplyForceToCenter(b->GetMass() * wind, /*wake=*/true);
    }
    scene.world->Step(kDt, kVelocityIterations, kPositionIterations);
    publish(static_cast<uint64_t>(step), wind);
    if (step % 30 == 0 || step == steps) {
      const Summary s = summarize(bus.page_bytes(bodies_page), mass);
      std::printf("step %4d  epoch %6" PRIu64 "  wind (%6.3f, %6.3f)  moving %3u/%u  kinetic %8.2f J  "
                  "front x=%6.2f\n",
                  step, bus.epoch(), wind.x, wind.y, s.moving, n, s.kinetic, s.front);
    }
  }

  if (recorder) {
    check(recorder->stop(), "Recorder::stop");
    const mmsb::capture::RecorderStats st = recorder->stats();
    std::printf("recorded %" PRIu64 " deltas (epochs 1..%" PRIu64 ") under %s\n", st.deltas, st.last_epoch,
                record.c_str());
  }
  const Summary expect = summarize(bus.page_bytes(bodies_page), mass);
  const bool derived_ok = std::memcmp(bus.page_bytes(summary_page).data(), &expect, sizeof expect) == 0;
  std::printf("end: step %d, epoch %" PRIu64 ", state hash %016" PRIx64 "; 'summary' %s the bodies\n", steps,
              bus.epoch(), bus.state_hash(), derived_ok ? "matches" : "does NOT match");
  return derived_ok ? 0 : 1;
}
