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

#include "kernels/timestep_embedding.h"

TEST_CASE("gpu: diffusers' timestep embedding matches the cpu", "[gpu][timestep_embedding]") {
  Tensor t = Tensor::from_vector({4}, {0.0f, 1.0f, 500.0f, 999.0f});
  for (int64_t dim : {7, 128})
    for (bool flip : {false, true}) {
      std::vector<float> fv = kernels::timestep_frequencies(dim, 1.0);
      Tensor f = Tensor::from_vector({static_cast<int64_t>(fv.size())}, fv);
      Tensor g = kernels::timestep_embedding(t.to(Device::CUDA), f.to(Device::CUDA), dim, flip);
      // CUDA's sinf/cosf (2 ulp) vs glibc's (1 ulp) at arguments up to ~1000: 1e-5.
      expect_close("timestep_embedding", g.to(Device::CPU), kernels::timestep_embedding(t, f, dim, flip), 1e-5);
    }
}
