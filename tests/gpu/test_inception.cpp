// GPU vs CPU for FID's Inception-v3 (models/inception.h): the same random weights in pytorch-fid's
// layout on both, pool3 features of RGB and grayscale images of odd sizes, and a whole FID pipeline step
// (features into statistics) agreeing with the CPU's.
#include <catch2/catch.hpp>

#include "autograd/var.h"
#include "models/fid_stats.h"
#include "models/inception.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: inception pool3 features match the cpu", "[gpu][inception][fid]") {
  DD_TEST_RANDOM(rng);
  ag::NoGrad no_grad;
  const uint64_t seed = test_seed() % 1000;
  const fid::InceptionV3 gpu = fid::InceptionV3::random(seed, Device::CUDA);
  const fid::InceptionV3 cpu = fid::InceptionV3::random(seed, Device::CPU);
  for (const Shape& s : {Shape{3, 32, 32, 3}, Shape{2, 28, 28, 1}, Shape{1, 299, 299, 3}}) {
    INFO("images " << shape_str(s));
    const Tensor images = from_double(s, rng.uniform(shape_numel(s), 0.0, 1.0));
    const Tensor g = gpu.features(images.to(Device::CUDA)).to(Device::CPU);
    const Tensor c = cpu.features(images);
    // 94 fp32 convolutions in two summation orders (implicit GEMM vs im2col + Eigen), ~1e-6 per layer
    // compounding with depth: 1e-4 relative to the largest feature, the bound against pytorch-fid.
    expect_close("features", g, c, 1e-4);
    fid::FeatureStats sg(fid::kFeatureDim), sc(fid::kFeatureDim);
    sg.add(g.data(), s[0]);
    sc.add(c.data(), s[0]);
    const std::vector<double> mg = sg.mean(), mc = sc.mean();
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < mg.size(); ++i) {
      worst = std::max(worst, std::abs(mg[i] - mc[i]));
      scale = std::max(scale, std::abs(mc[i]));
    }
    CHECK(worst <= 1e-4 * scale);  // the mean of features within their bound
  }
}
