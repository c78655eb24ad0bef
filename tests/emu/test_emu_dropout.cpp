// kernels/cuda/dropout.cu on the CPU through the host emulation: the same mask, bit for bit, as
// the CPU backend for a (seed, offset), including a graph-anchored offset read through its base.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;

TEST_CASE("emu: dropout drops the cpu's elements", "[emu][dropout]") {
  DD_TEST_RANDOM(rng);
  for (int64_t n : {1, 5, 1027}) {
    Tensor x = rnd(rng, {n});
    for (float p : {0.1f, 0.5f}) {
      CHECK(kernels::emu::dropout(x, p, 42, 9).to_vector() == kernels::cpu::dropout(x, p, 42, 9).to_vector());
      const uint64_t base = 5;
      CHECK(kernels::emu::dropout(x, p, 42, PhiloxOffset(4, &base)).to_vector() ==
            kernels::cpu::dropout(x, p, 42, 9).to_vector());
    }
  }
}

TEST_CASE("emu: diffusers' timestep embedding matches the cpu", "[emu][timestep_embedding]") {
  Tensor t = Tensor::from_vector({3}, {0.0f, 1.0f, 999.0f});
  for (int64_t dim : {4, 7, 128})
    for (bool flip : {false, true}) {
      std::vector<float> fv = kernels::timestep_frequencies(dim, 1.0);
      Tensor f = Tensor::from_vector({static_cast<int64_t>(fv.size())}, fv);
      // Both backends' sinf/cosf: a few ulp of arguments up to ~1000.
      expect_close(str_cat("dim ", dim, flip ? " flip" : ""), kernels::emu::timestep_embedding(t, f, dim, flip),
                   kernels::cpu::timestep_embedding(t, f, dim, flip), 1e-5);
    }
}
