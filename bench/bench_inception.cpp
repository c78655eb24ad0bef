// FID's Inception-v3 (models/inception.h) on random weights in pytorch-fid's layout: images per second
// of pool3 features at batch 50 (pytorch-fid's default) from 32x32 inputs (CIFAR-10 samples, resized to
// 299x299 inside), and what 50,000 images (a published FID) take at that rate. The yardstick is the
// SGEMM rate measured in the same run: Inception-v3 is 5.7 G multiply-adds an image (torchvision's count,
// its "GFLOPS" column), almost all in convolutions.
// GPU: checked against the CPU backend on the same weights and images before timing.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autograd/var.h"
#include "bench/bench_common.h"
#include "models/inception.h"

using namespace dd;
using namespace dd::bench;

namespace {
constexpr double kFlopPerImage = 2 * 5.7e9;

// Images in [0, 1]: normals squeezed and clamped (the values do not matter for the timing).
Tensor random_images(int n, int size) {
  Tensor t = random_tensor({n, size, size, 3}, Device::CPU, 5);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::min(1.0f, std::max(0.0f, 0.5f + 0.25f * p[i]));
  return t;
}
}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const Device dev = a.device();
  ag::NoGrad no_grad;
  const int batch = a.batch_or(50, a.quick ? 2 : 8);
  const fid::InceptionV3 net = fid::InceptionV3::random(11, dev);
  const Tensor images = random_images(batch, 32);
  print_header("FID Inception-v3, pool3 features (random weights in pytorch-fid's layout)", a);
  bool ok = true;
  double err = NAN;
  if (!a.cpu) {
    const fid::InceptionV3 ref = fid::InceptionV3::random(11, Device::CPU);
    Tensor two = Tensor::empty({2, 32, 32, 3});
    std::copy(images.data(), images.data() + two.numel(), two.data());
    // fp32 convolutions in two summation orders through 94 layers: 1e-4 (tests/test_inception.cpp's bound).
    err = rel_err(net.features(two.to(dev)).to(Device::CPU), ref.features(two));
    ok &= check("features (2 images) vs the CPU backend", err, 1e-4);
  }
  if (!ok) return 1;
  const Tensor x = images.to(dev);
  const double ms = time_ms(dev, [&] { (void)net.features(x); }, a.warmup_or(2, 1), a.repeats_or(10, a.quick ? 1 : 3));
  const double ips = batch / (ms / 1e3);
  const double sgemm = measured_sgemm_tflops(dev);
  table_header({"batch", "ms", "images/s", "50,000 images (s)", "TFLOP/s", "% of SGEMM", "rel err vs CPU"});
  table_row({std::to_string(batch), fmt(ms), fmt(ips, 1), fmt(50000.0 / ips, 1), fmt(ips * kFlopPerImage / 1e12, 2),
             fmt(100.0 * ips * kFlopPerImage / 1e12 / sgemm, 1), a.cpu ? "-" : fmt_err(err)});
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_inception: %s\n", e.what());
  return 1;
}
