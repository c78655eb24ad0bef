// GPU vs CPU for the diffusion steps, and for the steps that draw their noise
// in the kernel. Per-sample timesteps with sample 0 at t = 0 (sigma = 0), odd
// sizes so Philox blocks straddle sample boundaries, and offsets past 2^32 (the
// counter's high word).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "engine/rng.h"
#include "kernels/diffusion.h"
#include "kernels/timesteps.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
// The linear beta schedule's buffers in double (the GPU test binary does not link
// the models library, and only plausible coefficient values matter here).
struct Buffers {
  std::vector<double> betas, sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, sqrt_recip_alphas,
      posterior_variance, sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod;
  explicit Buffers(int T) {
    double prev = 1.0;
    for (int i = 0; i < T; ++i) {
      const double beta = 1e-4 + (0.02 - 1e-4) * i / (T - 1), ac = prev * (1.0 - beta);
      betas.push_back(beta);
      sqrt_alphas_cumprod.push_back(std::sqrt(ac));
      sqrt_one_minus_alphas_cumprod.push_back(std::sqrt(1.0 - ac));
      sqrt_recip_alphas.push_back(1.0 / std::sqrt(1.0 - beta));
      posterior_variance.push_back(beta * (1.0 - prev) / (1.0 - ac));
      sqrt_recip_alphas_cumprod.push_back(std::sqrt(1.0 / ac));
      sqrt_recipm1_alphas_cumprod.push_back(std::sqrt(1.0 / ac - 1.0));
      prev = ac;
    }
  }
};

Tensor gather(const std::vector<double>& buf, const std::vector<int64_t>& t, bool sqrt_of = false) {
  std::vector<float> v;
  for (int64_t ti : t) {
    const double x = buf[static_cast<std::size_t>(ti)];
    v.push_back(static_cast<float>(sqrt_of ? std::sqrt(x) : x));
  }
  return Tensor::from_vector({static_cast<int64_t>(t.size())}, v);
}

kernels::PSampleCoefs step_coefs(const Buffers& sc, const std::vector<int64_t>& t) {
  kernels::PSampleCoefs c;
  c.sqrt_recip_alpha = gather(sc.sqrt_recip_alphas, t);
  c.beta = gather(sc.betas, t);
  c.sqrt_one_minus_ac = gather(sc.sqrt_one_minus_alphas_cumprod, t);
  c.sigma = gather(sc.posterior_variance, t, true);
  return c;
}

kernels::PSampleCoefs to_gpu(const kernels::PSampleCoefs& c) {
  return {c.sqrt_recip_alpha.to(Device::CUDA), c.beta.to(Device::CUDA), c.sqrt_one_minus_ac.to(Device::CUDA),
          c.sigma.to(Device::CUDA)};
}

double max_abs(const Tensor& t) {
  double m = 1.0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}
}  // namespace

TEST_CASE("gpu: diffusion steps match the cpu", "[gpu][diffusion]") {
  DD_TEST_RANDOM(rng);
  const Buffers sc(1000);
  for (Shape shape : {Shape{1, 1, 1, 1}, Shape{3, 5, 3, 1}, Shape{2, 7}, Shape{4, 9, 11, 3}, Shape{2, 64, 65, 3}}) {
    const int64_t B = shape[0], n = shape_numel(shape);
    INFO("shape " << shape_str(shape));
    for (bool all_t0 : {false, true}) {
      std::vector<int64_t> t;
      for (int64_t b = 0; b < B; ++b) t.push_back(b == 0 || all_t0 ? 0 : rng.uniform_int(1, 999));
      const Tensor x = from_double(shape, rng.normal_f32(n)), e = from_double(shape, rng.normal_f32(n));
      const Tensor z = from_double(shape, rng.normal_f32(n));
      const Tensor xg = x.to(Device::CUDA), eg = e.to(Device::CUDA), zg = z.to(Device::CUDA);
      const Tensor a = gather(sc.sqrt_alphas_cumprod, t), b = gather(sc.sqrt_one_minus_alphas_cumprod, t);
      const Tensor ag = a.to(Device::CUDA), bg = b.to(Device::CUDA);
      const kernels::PSampleCoefs c = step_coefs(sc, t), cg = to_gpu(c);

      // A few float32 operations on O(1) values; host and device may fuse a
      // multiply-add differently: 1e-5 of the terms' size (1: a one-element result may cancel).
      expect_close("q_sample", kernels::q_sample(xg, zg, ag, bg).to(Device::CPU), kernels::q_sample(x, z, a, b),
                   1e-5, 1.0);
      expect_close("p_sample_step", kernels::p_sample_step(xg, eg, zg, cg).to(Device::CPU),
                   kernels::p_sample_step(x, e, z, c), 1e-5, 1.0);
      expect_close("p_sample_step mean", kernels::p_sample_step(xg, eg, Tensor(), cg).to(Device::CPU),
                   kernels::p_sample_step(x, e, Tensor(), c), 1e-5, 1.0);

      const Tensor r1 = gather(sc.sqrt_recip_alphas_cumprod, t), rm = gather(sc.sqrt_recipm1_alphas_cumprod, t);
      const Tensor r1g = r1.to(Device::CUDA), rmg = rm.to(Device::CUDA);
      const Tensor unclamped = kernels::predict_x0(x, e, r1, rm, false);
      expect_close("predict_x0", kernels::predict_x0(xg, eg, r1g, rmg, false).to(Device::CPU), unclamped, 1e-5,
                   std::max(1.0, max_abs(unclamped)));
      // Clamped values are O(1) but come from terms of the unclamped scale (up to
      // ~150 x |eps|): 1e-5 of that scale.
      const Tensor clamped = kernels::predict_x0(xg, eg, r1g, rmg, true).to(Device::CPU);
      const std::vector<float> cv = clamped.to_vector();
      CHECK(std::all_of(cv.begin(), cv.end(), [](float v) { return v >= -1.0f && v <= 1.0f; }));
      const CloseReport rc = compare(cv, kernels::predict_x0(x, e, r1, rm, true).to_vector(),
                                     1e-5 * max_abs(unclamped));
      INFO("predict_x0 clamped: " << rc.message);
      CHECK(rc.ok);

      for (uint64_t offset : {uint64_t{0}, uint64_t{12345}, (uint64_t{1} << 32) - 1, (uint64_t{7} << 32) + 3}) {
        INFO("offset " << offset << (all_t0 ? " (every sample at t = 0)" : ""));
        const uint64_t seed = rng.engine()();
        const kernels::QSampleOut qc = kernels::q_sample_philox(x, a, b, seed, offset);
        const kernels::QSampleOut qg = kernels::q_sample_philox(xg, ag, bg, seed, offset);
        // The noise: the same counters, Box-Muller in double rounded once on both: 1e-6
        // (as the randn test in test_gpu_basics).
        expect_close("q_sample_philox noise", qg.noise.to(Device::CPU), qc.noise, 1e-6);
        expect_close("q_sample_philox x_t", qg.x_t.to(Device::CPU), qc.x_t, 1e-5, 1.0);
        // In-kernel noise equals the device's own randn fed to the unfused kernel (same
        // stream; the two kernels may fuse differently): 1e-6.
        const Tensor rg = randn(shape, seed, offset, Device::CUDA);
        expect_close("q_sample_philox vs randn + q_sample", qg.x_t.to(Device::CPU),
                     kernels::q_sample(xg, rg, ag, bg).to(Device::CPU), 1e-6, 1.0);

        const Tensor pc = kernels::p_sample_step_philox(x, e, c, seed, offset);
        const Tensor pg = kernels::p_sample_step_philox(xg, eg, cg, seed, offset);
        expect_close("p_sample_step_philox", pg.to(Device::CPU), pc, 1e-5, 1.0);
        if (all_t0)  // sigma == 0 everywhere: exactly the mean, no noise
          expect_close("p_sample_step_philox at t = 0", pg.to(Device::CPU),
                       kernels::p_sample_step(xg, eg, Tensor(), cg).to(Device::CPU), 0.0);
      }
    }
  }
}

// Training's timesteps drawn on the device: the CPU's numbers bitwise (integer arithmetic), and the
// gathered coefficients equal to the CPU's lookups; offsets past 2^32 exercise the counter's high word.
TEST_CASE("gpu: timestep draw and gather match the cpu", "[gpu][diffusion][timesteps]") {
  for (int64_t T : {1, 17, 1000}) {
    for (int64_t B : {1, 7, 513}) {
      const uint64_t seed = 0x1234abcd5678ULL + static_cast<uint64_t>(B), offset = (uint64_t(1) << 32) - 3;
      const Tensor tc = kernels::draw_timesteps(B, T, seed, offset, Device::CPU);
      const Tensor tg = kernels::draw_timesteps(B, T, seed, offset, Device::CUDA);
      CHECK(tg.to_vector() == tc.to_vector());
      std::vector<float> tab(static_cast<std::size_t>(T));
      for (int64_t i = 0; i < T; ++i) tab[static_cast<std::size_t>(i)] = 1.0f / static_cast<float>(i + 3);
      const Tensor table = Tensor::from_vector({T}, tab);
      CHECK(kernels::gather_timesteps(table.to(Device::CUDA), tg).to_vector() ==
            kernels::gather_timesteps(table, tc).to_vector());
    }
  }
}
