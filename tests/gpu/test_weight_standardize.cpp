// GPU weight standardisation vs the CPU backend, forward and backward, over
// conv-weight shapes [Co, K, K, Ci] including one-element rows and the U-Net's largest.
#include <catch2/catch.hpp>

#include "engine/error.h"
#include "kernels/weight_standardize.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: weight standardisation matches the cpu", "[gpu][weight_standardize]") {
  DD_TEST_RANDOM(rng);
  std::vector<Shape> shapes;
  for (int64_t co : {1, 3, 70})
    for (int64_t k : {1, 3, 7})
      for (int64_t ci : {1, 3, 33}) shapes.push_back({co, k, k, ci});
  shapes.push_back({512, 3, 3, 512});  // rows of 4608: many elements per thread
  shapes.push_back({384, 1, 1, 128});  // to_qkv
  shapes.push_back({5, 300});          // any [O, ...] weight
  for (const Shape& s : shapes) {
    const std::string what = shape_str(s);
    INFO(what);
    const int64_t n = shape_numel(s);
    // An offset mean, so the centring matters.
    std::vector<double> wv = rng.normal_f32(n, 0.3);
    for (double& v : wv) v = static_cast<double>(static_cast<float>(v + 0.2));
    Tensor w = from_double(s, wv);
    Tensor g = from_double(s, rng.normal_f32(n));
    Tensor gw = w.to(Device::CUDA), gg = g.to(Device::CUDA);
    for (float eps : {1e-5f, 1e-3f}) {
      Tensor y = kernels::weight_standardize_forward(gw, eps);
      REQUIRE(y.device() == Device::CUDA);
      // Statistics in double on both sides, only the final float rounding and the
      // summation order differ: well inside the 1e-5 of elementwise ops.
      expect_close("forward " + what, y.to(Device::CPU), kernels::weight_standardize_forward(w, eps), 1e-5);
      Tensor d = kernels::weight_standardize_backward(gw, gg, eps);
      REQUIRE(d.device() == Device::CUDA);
      // Same double arithmetic per element: 1e-5.
      expect_close("backward " + what, d.to(Device::CPU), kernels::weight_standardize_backward(w, g, eps), 1e-5);
    }
  }
}

TEST_CASE("gpu: weight standardisation repeats bitwise", "[gpu][weight_standardize]") {
  DD_TEST_RANDOM(rng);
  const Shape s{64, 3, 3, 64};
  Tensor w = from_double(s, rng.normal_f32(shape_numel(s))).to(Device::CUDA);
  Tensor g = from_double(s, rng.normal_f32(shape_numel(s))).to(Device::CUDA);
  CHECK(kernels::weight_standardize_forward(w).to_vector() == kernels::weight_standardize_forward(w).to_vector());
  CHECK(kernels::weight_standardize_backward(w, g).to_vector() ==
        kernels::weight_standardize_backward(w, g).to_vector());
}
