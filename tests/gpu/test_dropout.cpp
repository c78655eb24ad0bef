// GPU dropout drops exactly the CPU's elements for a (seed, offset), with the same values.
#include <catch2/catch.hpp>

#include "kernels/dropout.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: dropout matches the cpu bit for bit", "[gpu][dropout]") {
  DD_TEST_RANDOM(rng);
  for (int64_t n : {1, 7, 128 * 32 * 32 * 16 + 3}) {
    Tensor x = from_double({n}, rng.normal_f32(n));
    for (float p : {0.1f, 0.5f}) {
      Tensor g = kernels::dropout(x.to(Device::CUDA), p, 1234, 567);
      CHECK(g.to(Device::CPU).to_vector() == kernels::dropout(x, p, 1234, 567).to_vector());
    }
  }
}
