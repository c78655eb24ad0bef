// The caching device allocator: freed blocks are reused without cudaMalloc,
// the counters add up, and empty_cache gives everything back.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "engine/device.h"
#include "engine/tensor.h"

using namespace dd;

TEST_CASE("gpu: the caching allocator reuses freed blocks and counts bytes", "[gpu][allocator]") {
  if (const char* env = std::getenv("DD_CUDA_NO_CACHE"); env && *env && std::string(env) != "0") {
    WARN("DD_CUDA_NO_CACHE is set: the cache is off, nothing to test here");
    return;
  }
  cuda_mem::synchronize();
  cuda_mem::empty_cache();
  const cuda_mem::Stats s0 = cuda_mem::stats();
  CHECK(s0.cached == 0);
  {
    Tensor a = Tensor::empty({1000, 37}, Device::CUDA);  // 148000 bytes, rounded up to 512
    const cuda_mem::Stats s1 = cuda_mem::stats();
    CHECK(s1.in_use == s0.in_use + 148480);
    CHECK(s1.device_mallocs == s0.device_mallocs + 1);
    CHECK(s1.peak_in_use >= s1.in_use);
  }
  const cuda_mem::Stats s2 = cuda_mem::stats();
  CHECK(s2.in_use == s0.in_use);
  CHECK(s2.cached == 148480);
  CHECK(s2.reserved == s2.in_use + s2.cached);
  {
    // Any request that rounds to the same size is served from the cache.
    Tensor b = Tensor::full({148000 / 4 - 3}, 2.0f, Device::CUDA);
    CHECK(cuda_mem::stats().device_mallocs == s2.device_mallocs);
    CHECK(b.to(Device::CPU).to_vector().back() == 2.0f);
  }
  {
    // Above 1 MiB sizes round to 128 KiB.
    Tensor c = Tensor::empty({(1 << 20) / 4 + 1}, Device::CUDA);
    CHECK(cuda_mem::stats().in_use == s0.in_use + (1 << 20) + (128 << 10));
  }
  cuda_mem::empty_cache();
  const cuda_mem::Stats s3 = cuda_mem::stats();
  CHECK(s3.cached == 0);
  CHECK(s3.reserved == s3.in_use);
  cuda_mem::reset_peak();
  CHECK(cuda_mem::stats().peak_in_use == s3.in_use);
}
