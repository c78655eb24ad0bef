// Bilinear resize (kernels/resize.h): the CPU backend against the float64 reference on up- and
// downscales of odd sizes, and against torch's F.interpolate itself (tests/torch/resize_ref.py).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "kernels/resize.h"
#include "tests/reference/resize.h"
#include "tests/support/compare.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;

namespace {
struct ResizeCase {
  Shape x;
  int oh, ow;
};
// pytorch-fid's resizes to 299x299 (MNIST-like, CIFAR-like, odd), downscales, an unchanged axis
// (torch copies it), a one-pixel input and a one-pixel output.
const std::vector<ResizeCase> kCases = {
    {{2, 28, 28, 1}, 299, 299}, {{2, 32, 32, 3}, 299, 299}, {{1, 17, 23, 5}, 299, 299},
    {{1, 299, 299, 3}, 17, 31}, {{2, 17, 23, 5}, 40, 9},    {{1, 9, 8, 3}, 4, 4},
    {{2, 5, 7, 3}, 5, 11},      {{1, 1, 1, 4}, 3, 2},       {{1, 6, 4, 2}, 1, 1},
};
std::string case_str(const ResizeCase& c) { return str_cat(shape_str(c.x), " -> ", c.oh, "x", c.ow); }
}  // namespace

TEST_CASE("resize_bilinear matches the float64 reference", "[resize]") {
  DD_TEST_RANDOM(rng);
  for (const ResizeCase& c : kCases) {
    INFO(case_str(c));
    const std::vector<double> x = rng.normal_f32(shape_numel(c.x));
    const Tensor y = kernels::resize_bilinear(from_double(c.x, x), c.oh, c.ow);
    REQUIRE(y.shape() == Shape{c.x[0], c.oh, c.ow, c.x[3]});
    // The same taps (the reference takes torch's float scale too); float weights (one rounding each)
    // and three rounded FMAs/products of O(1) terms: a few ulps, 1e-6 of the scale. A wrong tap
    // would be off by the inputs' differences, O(1).
    expect_close("resize_bilinear", y, ref::resize_bilinear(x, c.x[0], c.x[1], c.x[2], c.x[3], c.oh, c.ow), 1e-6);
  }
}

TEST_CASE("resize_bilinear to the same size is a copy", "[resize]") {
  DD_TEST_RANDOM(rng);
  const Shape s{2, 7, 5, 3};
  const Tensor x = from_double(s, rng.normal_f32(shape_numel(s)));
  // Weights 1 and 0: fma(x, 1, x' * 0) = x exactly.
  CHECK(kernels::resize_bilinear(x, 7, 5).to_vector() == x.to_vector());
}

TEST_CASE("resize_bilinear errors name the sizes and the shape", "[resize]") {
  CHECK_THROWS_WITH(kernels::resize_bilinear(Tensor::zeros({2, 3, 4}), 5, 5),
                    Catch::Contains("resize_bilinear") && Catch::Contains("[2,3,4]"));
  CHECK_THROWS_WITH(kernels::resize_bilinear(Tensor::zeros({1, 3, 4, 2}), 0, 5),
                    Catch::Contains("output size 0x5") && Catch::Contains("[1,3,4,2]"));
  CHECK_THROWS_WITH(kernels::resize_bilinear(Tensor::zeros({1, 3, 4, 2}), 5, (1 << 24) + 1),
                    Catch::Contains("2^24"));
}

TEST_CASE("resize_bilinear matches torch's F.interpolate(bilinear, align_corners=False)", "[resize][torch]") {
  DD_TEST_RANDOM(rng);
  // Values in [0, 1] as pytorch-fid's images; every case but the one-pixel ones.
  const std::vector<ResizeCase> cases(kCases.begin(), kCases.begin() + 7);
  SafeTensorsFile in;
  nlohmann::json sizes = nlohmann::json::array();
  std::vector<Tensor> ours;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::vector<double> v = rng.uniform(shape_numel(cases[i].x), 0.0, 1.0);
    for (double& e : v) e = static_cast<float>(e);
    const Tensor x = from_double(cases[i].x, v);
    in.put_f32("x" + std::to_string(i), x);
    sizes.push_back({cases[i].oh, cases[i].ow});
    ours.push_back(kernels::resize_bilinear(x, cases[i].oh, cases[i].ow));
  }
  in.metadata["sizes"] = sizes.dump();
  TempDir dir("resize");
  save_safetensors(dir.file("in.safetensors"), in);
  run_torch_script("resize_ref.py", {dir.file("in.safetensors"), dir.file("out.safetensors")});
  const SafeTensorsFile out = load_safetensors(dir.file("out.safetensors"));
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(case_str(cases[i]));
    const Tensor ref = out.at("y" + std::to_string(i)).to_f32();
    REQUIRE(ref.shape() == ours[i].shape());
    // torch's own float arithmetic: bit-identical for C > 1 on an AVX2 build of torch, within an ulp
    // where it takes another kernel or lacks FMA (C = 1: its channels-last loop); judged at an absolute
    // 1e-6 (about 8 ulps of 1), the floor 1.0 making the tolerance absolute for values in [0, 1].
    expect_close("resize vs torch", ours[i], ref, 1e-6, 1.0);
  }
}
