// GPU vs CPU for the sinusoidal time embedding. Both use the host's float32
// frequencies and the same float product t * f; only sinf/cosf differ (CUDA's
// within 2 ulp, glibc's within 1).
#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/time_embedding.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: time embedding forward and backward match the cpu", "[gpu][time_embedding]") {
  DD_TEST_RANDOM(rng);
  for (int64_t B : {1, 3, 37}) {
    for (int64_t dim : {4, 6, 32, 130, 514}) {
      INFO("B=" << B << " dim=" << dim);
      std::vector<double> tv = rng.uniform(B, 0.0, 1000.0);
      for (std::size_t i = 0; i < tv.size(); i += 2) tv[i] = std::floor(tv[i]);  // integer steps too
      const Tensor t = from_double({B}, tv);
      const Tensor dy = from_double({B, dim}, rng.normal(B * dim));
      const Tensor tg = t.to(Device::CUDA);
      // Outputs in [-1, 1]; a few ulp of sin/cos: 1e-5.
      expect_close("forward", kernels::time_embedding_forward(tg, dim).to(Device::CPU),
                   kernels::time_embedding_forward(t, dim), 1e-5);
      // A sum over dim/2 terms in double in another order, each term carrying the
      // sin/cos ulp difference: 1e-4 (reduction).
      expect_close("backward", kernels::time_embedding_backward(tg, dy.to(Device::CUDA)).to(Device::CPU),
                   kernels::time_embedding_backward(t, dy), 1e-4);
    }
  }
}
