// engine/cuda/cast.cu (the CUDA side of Tensor::to(DType) and of fill_), run on the
// CPU through the host emulation, vs the host cast: the same bits for every pair.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"
#include "tests/support/dtype_samples.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("emu: dtype casts (engine/cuda/cast.cu) give the cpu's bits", "[emu][dtype]") {
  DD_TEST_RANDOM(rng);
  // 1 element, less than a block, several blocks with a partial last one.
  for (int64_t n : {1, 37, 2 * 256 + 5}) {
    for (DType from : all_dtypes()) {
      const std::vector<uint8_t> src = dtype_samples(from, n, rng.engine()());
      for (DType to : all_dtypes()) {
        INFO(dtype_name(from) << " -> " << dtype_name(to) << ", n = " << n);
        std::vector<uint8_t> want(n * dtype_size(to)), got(n * dtype_size(to), 0xAB);
        cast_host(src.data(), from, want.data(), to, n);
        emu_cast::cast(src.data(), from, got.data(), to, n);
        CHECK(got == want);
      }
    }
  }
}

TEST_CASE("emu: dtype fill (engine/cuda/cast.cu) writes the pattern everywhere", "[emu][dtype]") {
  for (std::size_t size : {2, 4, 8}) {
    const int64_t n = 300;
    std::vector<uint8_t> got(n * size + 8, 0xAB);
    emu_cast::fill(got.data(), size, 0x0123456789abcdefull, n);
    for (int64_t i = 0; i < n; ++i) {
      uint64_t v = 0;
      std::memcpy(&v, got.data() + i * size, size);
      const uint64_t mask = size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
      REQUIRE(v == (0x0123456789abcdefull & mask));
    }
    for (std::size_t i = n * size; i < got.size(); ++i) CHECK(got[i] == 0xAB);  // nothing past the end
  }
}
