// pytorch-fid's Inception-v3 on our kernels (models/inception.h) and the FID pipeline of ddpm_tool
// (apps/ddpm/fid_eval.h), against pytorch-fid itself (tests/torch/inception_fid.py) with random weights in
// the layout of its published file, converted by scripts/convert_inception.py as a user would.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "apps/ddpm/fid_eval.h"
#include "apps/report/image_grid.h"
#include "autograd/var.h"
#include "engine/safetensors.h"
#include "models/fid_stats.h"
#include "models/inception.h"
#include "tests/support/compare.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;

namespace {

// Random Inception weights (pytorch-fid's layout) as a .pth and as our converted file.
struct RandomInception {
  std::string pth, st;
  RandomInception(const TempDir& dir, uint64_t seed) : pth(dir.file("inception.pth")), st(dir.file("inception.safetensors")) {
    run_reference_script("inception_fid.py", {"weights", pth, std::to_string(seed % 100000)});
    const std::string cmd = torch_python() + " '" DD_SOURCE_DIR "/scripts/convert_inception.py' '" + pth + "' '" + st +
                            "' --allow-other > '" + dir.file("convert.log") + "' 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
};

Tensor random_images(Random& rng, const Shape& s) { return from_double(s, rng.uniform(shape_numel(s), 0.0, 1.0)); }

// A folder of PNGs whose pixels follow a smooth random pattern (so Inception's features vary with the
// set rather than only with per-pixel noise); `shift` moves the set's distribution.
void write_png_set(const std::string& dir, Random& rng, int count, int size, double shift) {
  std::filesystem::create_directories(dir);
  for (int i = 0; i < count; ++i) {
    Tensor img = Tensor::empty({1, size, size, 3});
    const double fx = rng.uniform(1, 0.5, 3.0)[0], fy = rng.uniform(1, 0.5, 3.0)[0];
    const std::vector<double> phase = rng.uniform(3, 0.0, 6.283);
    const std::vector<double> noise = rng.uniform(static_cast<int64_t>(size) * size * 3, -0.2, 0.2);
    float* p = img.data();
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x)
        for (int c = 0; c < 3; ++c) {
          const int64_t k = (static_cast<int64_t>(y) * size + x) * 3 + c;
          p[k] = static_cast<float>(std::sin(fx * x * 0.4 + fy * y * 0.3 + phase[c]) * 0.7 + shift + noise[k]);
        }
    char name[32];
    std::snprintf(name, sizeof name, "/%04d.png", i);
    report::write_image_grid(dir + name, img, 1, 0);
  }
}

}  // namespace

TEST_CASE("inception: pool3 features match pytorch-fid's InceptionV3 on random weights", "[fid][inception][python]") {
  DD_TEST_RANDOM(rng);
  TempDir dir("dd_inception");
  const RandomInception w(dir, test_seed());
  const fid::InceptionV3 net = fid::InceptionV3::load(w.st);
  CHECK_FALSE(net.official());
  ag::NoGrad no_grad;
  // RGB and grayscale, upsampled from odd sizes, and one image already at 299x299 (no resize).
  for (const Shape& s : {Shape{3, 32, 32, 3}, Shape{2, 28, 28, 1}, Shape{2, 17, 23, 3}, Shape{1, 299, 299, 3}}) {
    INFO("images " << shape_str(s));
    const Tensor images = random_images(rng, s);
    SafeTensorsFile in;
    in.put_f32("images", images);
    save_safetensors(dir.file("images.safetensors"), in);
    run_reference_script("inception_fid.py",
                         {"features", w.pth, dir.file("images.safetensors"), dir.file("features.safetensors")});
    const Tensor want = load_safetensors(dir.file("features.safetensors")).at("features").to_f32();
    const Tensor got = net.features(images);
    REQUIRE(got.shape() == Shape{s[0], fid::kFeatureDim});
    // 94 fp32 convolutions (reductions up to 2,880 terms) in another summation order than torch's, with batch
    // norm folded into the weights (one extra rounding each): ~1e-6 per layer, compounding through the
    // depth; 1e-4 relative to the largest feature (the bound).
    expect_close("features", got, want, 1e-4);
  }
}

TEST_CASE("inception: random weights are the layout the loader reads, folded the same way", "[fid][inception]") {
  DD_TEST_RANDOM(rng);
  TempDir dir("dd_inception_random");
  SafeTensorsFile w;
  const fid::InceptionV3 a = fid::InceptionV3::random(5, Device::CPU, &w);
  CHECK(w.tensors.size() == 94 * 5);  // 94 BasicConv2d: conv weight and four batch-norm tensors each
  CHECK(w.at("Mixed_6b.branch7x7_2.conv.weight").shape == std::vector<int64_t>{128, 128, 1, 7});
  save_safetensors(dir.file("w.safetensors"), w);
  const fid::InceptionV3 b = fid::InceptionV3::load(dir.file("w.safetensors"));
  ag::NoGrad no_grad;
  const Tensor images = random_images(rng, {2, 19, 19, 3});
  // The same weights read back: the same features, bit for bit.
  expect_close("features", a.features(images), b.features(images), 0.0);
}

TEST_CASE("inception: a weights file of another layout is refused, naming the tensor", "[fid][inception]") {
  TempDir dir("dd_inception_bad");
  SafeTensorsFile f;
  f.put_f32("Conv2d_1a_3x3.conv.weight", Tensor::zeros({32, 3, 5, 5}));
  save_safetensors(dir.file("bad.safetensors"), f);
  REQUIRE_THROWS_WITH(fid::InceptionV3::load(dir.file("bad.safetensors")),
                      Catch::Contains("Conv2d_1a_3x3.conv.weight") && Catch::Contains("[32,3,5,5]") &&
                          Catch::Contains("[32,3,3,3]"));
}

TEST_CASE("fid: PNG folders score what pytorch-fid's calculate_fid_given_paths gives", "[fid][python]") {
  DD_TEST_RANDOM(rng);
  TempDir dir("dd_fid_folders");
  const RandomInception w(dir, test_seed() + 1);
  const fid::InceptionV3 net = fid::InceptionV3::load(w.st);
  // A few hundred images in all, of a size pytorch-fid upsamples, in two sets that differ.
  write_png_set(dir.file("a"), rng, 100, 16, 0.0);
  write_png_set(dir.file("b"), rng, 110, 16, 0.25);
  ag::NoGrad no_grad;
  ddpm::FidRunOptions opt;
  opt.show_progress = false;
  const fid::FidStats a = ddpm::stats_for(dir.file("a"), &net, opt);
  const fid::FidStats b = ddpm::stats_for(dir.file("b"), &net, opt);
  CHECK(a.count == 100);
  CHECK(b.count == 110);
  const double ours = fid::frechet_distance(a, b);
  const std::string out = run_reference_script("inception_fid.py", {"fid", w.pth, dir.file("a"), dir.file("b")});
  const auto at = out.rfind("fid ");
  REQUIRE(at != std::string::npos);
  const double theirs = std::strtod(out.c_str() + at + 4, nullptr);
  INFO("ours " << ours << ", pytorch-fid " << theirs);
  REQUIRE(std::isfinite(theirs));
  // The bound: 1e-3 absolute on the FID of the same images with the same weights.
  CHECK(std::abs(ours - theirs) <= 1e-3);
}
