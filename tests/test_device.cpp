// The --device flag's resolution, and the caching allocator's counters, on a
// machine with or without a GPU.
#include <catch2/catch.hpp>

#include "engine/device.h"

using namespace dd;
using Catch::Contains;

TEST_CASE("device: --device auto, cpu and cuda resolve or fail clearly", "[device]") {
  CHECK(resolve_device("cpu") == Device::CPU);
  CHECK(resolve_device("auto") == (cuda_available() ? Device::CUDA : Device::CPU));
  CHECK_THROWS_WITH(resolve_device("gpu"), Contains("--device must be cpu, cuda or auto, got 'gpu'"));
  CHECK_THROWS_WITH(resolve_device("tpu", "--dev"), Contains("--dev must be"));
  if (!cuda_built()) {
    CHECK_THROWS_WITH(resolve_device("cuda"), Contains("no CUDA backend"));
  } else if (!cuda_available()) {
    CHECK_THROWS_WITH(resolve_device("cuda"), Contains("--device cuda: no CUDA device found"));
  } else {
    CHECK(resolve_device("cuda") == Device::CUDA);
  }
}

TEST_CASE("device: allocator counters are zero until a GPU is used", "[device]") {
  if (cuda_available()) return;  // tests/gpu covers the allocator with a device
  const cuda_mem::Stats s = cuda_mem::stats();
  CHECK(s.in_use == 0);
  CHECK(s.device_mallocs == 0);
  cuda_mem::empty_cache();  // harmless without a device
}
