// diffusers' get_timestep_embedding (kernels/timestep_embedding.h) against a float64 reference of
// its formula, for both flip_sin_to_cos settings, freq_shift 0 and 1, and an odd dim (zero column).
// Forward only: UNet2DModel's timesteps carry no gradient.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/error.h"
#include "kernels/timestep_embedding.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
std::vector<double> ref(const std::vector<double>& t, int64_t dim, bool flip, double shift) {
  const int64_t half = dim / 2;
  std::vector<double> y(t.size() * static_cast<size_t>(dim), 0.0);
  for (size_t b = 0; b < t.size(); ++b)
    for (int64_t i = 0; i < half; ++i) {
      const double arg = t[b] * std::exp(-std::log(10000.0) * static_cast<double>(i) / (half - shift));
      y[b * dim + (flip ? half + i : i)] = std::sin(arg);
      y[b * dim + (flip ? i : half + i)] = std::cos(arg);
    }
  return y;
}
}  // namespace

TEST_CASE("timestep_embedding matches diffusers' formula in float64", "[timestep_embedding]") {
  const std::vector<double> t{0.0, 1.0, 17.0, 500.0, 999.0};
  for (int64_t dim : {2, 7, 32, 128})
    for (bool flip : {false, true})
      for (double shift : {0.0, 1.0}) {
        if (dim / 2 - shift == 0.0) continue;
        std::vector<float> fv = kernels::timestep_frequencies(dim, shift);
        Tensor f = Tensor::from_vector({static_cast<int64_t>(fv.size())}, fv);
        Tensor tt = Tensor::from_vector({5}, {0.0f, 1.0f, 17.0f, 500.0f, 999.0f});
        Tensor y = kernels::timestep_embedding(tt, f, dim, flip);
        REQUIRE(y.shape() == Shape{5, dim});
        // float32 frequencies (as torch) times t up to 999: the argument is off by up to ~1e-4
        // absolute against float64, which sin/cos pass on: 2e-4 of the output's scale (1).
        expect_close(str_cat("dim ", dim, flip ? " flip" : "", " shift ", shift), y, ref(t, dim, flip, shift), 2e-4);
      }
  CHECK_THROWS_WITH(kernels::timestep_frequencies(2, 1.0), Catch::Contains("freq_shift"));
}
