// Uses the installed engine: a bus, a write, a diff-applied assign, a mirror,
// and the CUDA mirror (its CPU path without a device). Exits 0 when every
// check holds, 1 otherwise.
#include <mmsb/cuda/mirror.h>
#include <mmsb/mmsb.h>

#include <array>
#include <cstdio>
#include <vector>

int main() {
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "consumer: FAILED: %s\n", what);
      ++failures;
    }
  };

  mmsb::Bus bus;
  mmsb::Result<mmsb::PageId> page = bus.create_page(64, "consumer");
  if (!page.ok()) {
    std::fprintf(stderr, "consumer: create_page: %s\n", page.status().to_string().c_str());
    return 1;
  }
  mmsb::CpuMirror mirror(bus);

  const std::array<std::byte, 3> hello{std::byte{'h'}, std::byte{'e'}, std::byte{'y'}};
  expect(bus.write(*page, 10, hello).ok(), "write");

  std::vector<std::byte> image(64, std::byte{0});  // the expected page
  image[10] = std::byte{'h'};
  image[11] = std::byte{'e'};
  image[12] = std::byte{'y'};
  std::vector<std::byte> got;
  expect(bus.copy_page(*page, &got).ok() && got == image, "the written bytes read back");

  image[63] = std::byte{0x7f};
  expect(bus.assign(*page, image).ok(), "assign");
  expect(bus.copy_page(*page, &got).ok() && got == image, "the assigned bytes read back");
  expect(bus.epoch() == 2, "two deltas -> epoch 2");

  expect(mirror.sync().ok(), "mirror sync");
  expect(mirror.state_hash() == bus.state_hash(), "mirror state hash == bus state hash");

  auto device = mmsb::cuda::DeviceMirror::open(bus);
  expect(device.ok(), "DeviceMirror::open");
  if (device.ok()) {
    std::printf("consumer: CUDA mirror on %s\n", (*device)->backend().c_str());
    expect((*device)->sync().ok(), "DeviceMirror sync");
    expect((*device)->check_coherence().ok(), "DeviceMirror pages hash equal to the bus's");
  }

  std::printf("consumer: %s (epoch %llu)\n", failures ? "FAILED" : "ok",
              static_cast<unsigned long long>(bus.epoch()));
  return failures ? 1 : 0;
}
