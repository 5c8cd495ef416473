// mmsb-sample-physics: a Box2D world whose state lives in MMSB pages.
//
// A pyramid of boxes stands on the ground; at --launch-step a heavy ball rolls
// in from the left and knocks it over. After every fixed-size physics step the
// program copies each body's transform and velocity into its own buffer and
// hands the whole buffer to Bus::assign: the diff engine compares it with the
// page and turns only the bytes that really changed into a delta (a body that
// did not move costs nothing). The bus keeps a derived page, 'regions' (per
// strip of the ground: bodies, moving bodies, kinetic energy, highest point),
// up to date from 'bodies' through the dependency graph.
//
// With --record DIR every delta is written to a recording. Box2D is
// deterministic for the same inputs in the same binary, so two runs record
// identical histories, epoch by epoch:
//
//   mmsb-sample-physics --record run1.mmsb
//   mmsb-sample-physics --record run2.mmsb
//   mmsb-replay compare run1.mmsb run2.mmsb     # identical, exit 0
//
// Pages (all little-endian, packed):
//   'world'    WorldHeader: step, simulated time, body count, awake bodies
//   'bodies'   BodyState per body: x, y, angle, vx, vy, omega (float)
//   'regions'  Region per ground strip, derived from 'bodies'
#include <box2d/box2d.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <mmsb/capture/recorder.h>
#include <mmsb/mmsb.h>

#include "sample.h"

namespace {

// ---- what the pages hold (MMSB itself only sees bytes) ----
struct WorldHeader {
  uint64_t step;       // steps simulated so far
  double time;         // simulated seconds (step * kDt)
  uint32_t bodies;     // entries in 'bodies'
  uint32_t awake;      // of them awake (Box2D puts resting bodies to sleep)
};
struct BodyState {
  float x, y, angle;   // position of the centre (m) and rotation (rad)
  float vx, vy, omega; // linear (m/s) and angular (rad/s) velocity
};
static_assert(sizeof(BodyState) == 24, "BodyState is packed: 6 floats");
struct Region {
  uint32_t bodies;     // bodies whose centre is over this strip
  uint32_t moving;     // ... of them faster than 1 cm/s
  float kinetic;       // their kinetic energy (J)
  float top;           // highest centre (m), 0 if none
};
constexpr int kRegions = 10;        // strips of the ground, left to right
constexpr float kRegionLeft = -25;  // strip i covers [left + i*width, left + (i+1)*width)
constexpr float kRegionWidth = 5;

// A fixed time step and fixed iteration counts: together with a fixed scene
// this is what makes Box2D reproducible.
constexpr float kDt = 1.0f / 60.0f;
constexpr int kVelocityIterations = 8;
constexpr int kPositionIterations = 3;

// ---- error handling: the sample stops at the first error (sample.h) ----
using sample::bytes_of;
using sample::check;

// ---- the scene ----
struct Scene {
  std::unique_ptr<b2World> world;
  std::vector<b2Body*> bodies;  // the order of the 'bodies' page
  b2Body* ball = nullptr;
};

Scene build_scene(int rows) {
  Scene s;
  s.world = std::make_unique<b2World>(b2Vec2(0.0f, -10.0f));

  // The ground: a static box whose top is y = 0, 50 m wide.
  b2BodyDef ground_def;
  ground_def.position.Set(0.0f, -1.0f);
  b2Body* ground = s.world->CreateBody(&ground_def);
  b2PolygonShape ground_box;
  ground_box.SetAsBox(25.0f, 1.0f);
  ground->CreateFixture(&ground_box, 0.0f);

  // The pyramid: `rows` rows of 1 m boxes, the bottom row centred on x = 5,
  // each row half a box in from the one below, dropped from 5 cm up.
  b2PolygonShape box;
  box.SetAsBox(0.5f, 0.5f);
  b2FixtureDef box_fixture;
  box_fixture.shape = &box;
  box_fixture.density = 1.0f;
  box_fixture.friction = 0.6f;
  for (int row = 0; row < rows; ++row) {
    const int count = rows - row;
    const float x0 = 5.0f - 0.5f * static_cast<float>(count - 1) * 1.05f;
    for (int i = 0; i < count; ++i) {
      b2BodyDef def;
      def.type = b2_dynamicBody;
      def.position.Set(x0 + 1.05f * static_cast<float>(i), 0.55f + 1.05f * static_cast<float>(row));
      b2Body* body = s.world->CreateBody(&def);
      body->CreateFixture(&box_fixture);
      s.bodies.push_back(body);
    }
  }

  // The wrecking ball: heavy, waiting on the ground at the far left.
  b2CircleShape circle;
  circle.m_radius = 1.0f;
  b2FixtureDef ball_fixture;
  ball_fixture.shape = &circle;
  ball_fixture.density = 8.0f;
  ball_fixture.friction = 0.4f;
  b2BodyDef ball_def;
  ball_def.type = b2_dynamicBody;
  ball_def.position.Set(-20.0f, 1.0f);
  s.ball = s.world->CreateBody(&ball_def);
  s.ball->CreateFixture(&ball_fixture);
  s.bodies.push_back(s.ball);
  return s;
}

// Copies every body's state into `out` (one BodyState per body, page order)
// and returns how many bodies are awake.
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

// The derived page: a pure function of the 'bodies' bytes (and of the masses
// and inertias, which never change). The bus calls it after every change of
// 'bodies'; assign() writes only the region bytes that differ.
std::vector<Region> summarize(std::span<const std::byte> bodies_page, const std::vector<float>& mass,
                              const std::vector<float>& inertia) {
  std::vector<Region> regions(kRegions, Region{0, 0, 0.0f, 0.0f});
  for (size_t i = 0; i < mass.size(); ++i) {
    BodyState b;
    std::memcpy(&b, bodies_page.data() + i * sizeof(BodyState), sizeof b);
    const int r = static_cast<int>(std::floor((b.x - kRegionLeft) / kRegionWidth));
    if (r < 0 || r >= kRegions) continue;  // fell off the edge of the world
    const float speed2 = b.vx * b.vx + b.vy * b.vy;
    Region& g = regions[r];
    g.bodies += 1;
    g.moving += speed2 > 1e-4f ? 1 : 0;
    g.kinetic += 0.5f * mass[i] * speed2 + 0.5f * inertia[i] * b.omega * b.omega;
    g.top = std::max(g.top, b.y);
  }
  return regions;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A Box2D pyramid knocked over by a wrecking ball; every body's transform and "
               "velocity lives in MMSB pages, a derived page summarizes them per region, and "
               "--record DIR records every delta."};
  int steps = 300;
  int rows = 10;
  int launch_step = 60;
  int print_every = 30;
  std::string record;
  app.add_option("--steps", steps, "Physics steps of 1/60 s to simulate")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--rows", rows, "Rows of the pyramid (rows*(rows+1)/2 boxes)")
      ->check(CLI::Range(1, 60))
      ->capture_default_str();
  app.add_option("--launch-step", launch_step, "Step at which the wrecking ball is launched (0: never)")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  app.add_option("--print-every", print_every, "Print a status line every N steps (0: never)")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  app.add_option("--record", record, "Record the run into this directory (must not exist or be empty)");
  CLI11_PARSE(app, argc, argv);

  Scene scene = build_scene(rows);
  const uint32_t n = static_cast<uint32_t>(scene.bodies.size());
  std::vector<float> mass(n), inertia(n);
  for (uint32_t i = 0; i < n; ++i) {
    mass[i] = scene.bodies[i]->GetMass();
    inertia[i] = scene.bodies[i]->GetInertia();
  }

  // 1. The pages.
  mmsb::Bus bus;
  const mmsb::PageId world_page = check(bus.create_page(sizeof(WorldHeader), "world"), "create_page");
  const mmsb::PageId bodies_page = check(bus.create_page(n * sizeof(BodyState), "bodies"), "create_page");
  const mmsb::PageId regions_page = check(bus.create_page(kRegions * sizeof(Region), "regions"), "create_page");
  std::printf("scene: %u bodies (%d-row pyramid and a wrecking ball); pages 'world' %zu B, "
              "'bodies' %zu B, 'regions' %zu B\n",
              n, rows, sizeof(WorldHeader), n * sizeof(BodyState), kRegions * sizeof(Region));

  // 2. Recording (optional): from here on a writer thread persists every delta.
  std::unique_ptr<mmsb::capture::Recorder> recorder;
  if (!record.empty()) {
    mmsb::capture::RecorderOptions options;
    options.labels = {{"sample", "physics"}, {"steps", std::to_string(steps)}, {"rows", std::to_string(rows)}};
    recorder = check(mmsb::capture::Recorder::start(bus, record, options), "Recorder::start");
    std::printf("recording into %s\n", record.c_str());
  }

  // 3. 'regions' is derived from 'bodies': the bus recomputes it whenever the
  //    bodies change, and each of its deltas names the epoch that caused it.
  check(bus.add_dependency(bodies_page, regions_page,
                           [&mass, &inertia](mmsb::UpdateContext& ctx) {
                             const std::vector<Region> r = summarize(ctx.source_bytes(), mass, inertia);
                             return ctx.assign(std::as_bytes(std::span(r)));
                           }),
        "add_dependency");

  // 4. The simulation loop. State flows one way: Box2D -> our buffer ->
  //    Bus::assign, which records only what changed.
  std::vector<BodyState> buffer(n);
  WorldHeader header{0, 0.0, n, 0};
  auto publish = [&](uint64_t step) {
    header.step = step;
    header.time = static_cast<double>(step) * kDt;
    header.awake = capture_bodies(scene, &buffer);
    check(bus.assign(bodies_page, std::as_bytes(std::span(buffer))), "assign bodies");
    check(bus.write(world_page, 0, bytes_of(header)), "write world");  // last: the step is complete
  };
  publish(0);  // the initial state: epoch 1 'bodies', 2 'regions', 3 'world'

  for (int step = 1; step <= steps; ++step) {
    if (step == launch_step) {
      scene.ball->SetLinearVelocity(b2Vec2(22.0f, 3.0f));  // roll in from the left
      std::printf("step %d: the wrecking ball is launched\n", step);
    }
    scene.world->Step(kDt, kVelocityIterations, kPositionIterations);
    publish(static_cast<uint64_t>(step));
    if (print_every > 0 && (step % print_every == 0 || step == steps)) {
      const std::vector<Region> r = summarize(bus.page_bytes(bodies_page), mass, inertia);
      float kinetic = 0;
      for (const Region& g : r) kinetic += g.kinetic;
      std::printf("step %4d  t=%5.2fs  epoch %6" PRIu64 "  awake %3u/%u  kinetic energy %9.2f J\n", step,
                  header.time, bus.epoch(), header.awake, n, kinetic);
    }
  }

  // 5. Stop the recorder before the bus goes away: last frames, index, trailer.
  if (recorder) {
    check(recorder->stop(), "Recorder::stop");
    const mmsb::capture::RecorderStats st = recorder->stats();
    std::printf("recorded %" PRIu64 " deltas (epochs 1..%" PRIu64 ") in %" PRIu64 " frame(s), %" PRIu64
                " byte(s) under %s\n",
                st.deltas, st.last_epoch, st.frames, st.total_bytes, record.c_str());
  }

  // The claim this sample makes: the derived page, maintained by the bus,
  // equals a fresh summary of the final bodies.
  const std::vector<Region> expect = summarize(bus.page_bytes(bodies_page), mass, inertia);
  const std::span<const std::byte> have = bus.page_bytes(regions_page);
  const bool derived_ok = std::memcmp(have.data(), expect.data(), have.size()) == 0;
  std::printf("end: step %d, epoch %" PRIu64 ", state hash %016" PRIx64 "; 'regions' %s the bodies\n", steps,
              bus.epoch(), bus.state_hash(), derived_ok ? "matches" : "does NOT match");
  return derived_ok ? 0 : 1;
}
