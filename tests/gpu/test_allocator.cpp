// The caching device allocator: freed blocks are reused without cudaMalloc,
// the counters add up, and empty_cache gives everything back.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

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

// copy_h2d copies the source out before it returns (the caller may overwrite it at once) and the
// DMA reads a pinned slot that is not reused until that DMA is done: many copies in a row, more than
// the ring has slots, of growing sizes, each overwritten on the host right after, must all arrive.
TEST_CASE("gpu: host-to-device copies go through pinned staging and arrive intact", "[gpu][staging]") {
  const cuda_mem::Stats s0 = cuda_mem::stats();
  std::vector<float> host;
  std::vector<Tensor> dev;
  std::vector<std::vector<float>> want;
  for (int i = 0; i < 40; ++i) {
    const int64_t n = 1 + (int64_t(i) * 7919) % 300000;  // up to ~1.2 MB, not multiples of anything
    host.assign(static_cast<std::size_t>(n), 0.0f);
    for (int64_t j = 0; j < n; ++j) host[static_cast<std::size_t>(j)] = static_cast<float>(i * 1000003 + j);
    dev.push_back(Tensor::from_vector({n}, host, Device::CUDA));
    want.push_back(host);
    for (float& v : host) v = -1.0f;  // a DMA still reading the caller's buffer would see this
  }
  for (std::size_t i = 0; i < dev.size(); ++i) CHECK(dev[i].to_vector() == want[i]);
  const cuda_mem::Stats s1 = cuda_mem::stats();
  CHECK(s1.h2d_staged == s0.h2d_staged + 40);
  CHECK(s1.h2d_pageable == s0.h2d_pageable);

  // Above the staging limit (64 MiB) a copy goes pageable, and still arrives.
  const int64_t big = (int64_t(64) << 20) / 4 + 3;
  std::vector<float> large(static_cast<std::size_t>(big));
  for (int64_t j = 0; j < big; ++j) large[static_cast<std::size_t>(j)] = static_cast<float>(j % 65521);
  Tensor g = Tensor::from_vector({big}, large, Device::CUDA);
  CHECK(g.to_vector() == large);
  CHECK(cuda_mem::stats().h2d_pageable == s1.h2d_pageable + 1);
}
