// GPU vs CPU for the samplers' fused steps (DDIM / x0-form DDPM, DPM-Solver++) and the weighted
// (min-SNR) loss: odd sizes, NaN-poisoned outputs (the runner poisons every new tensor), noise drawn
// in the kernel at an offset past 2^32.
#include <catch2/catch.hpp>

#include "kernels/ddim_step.h"
#include "kernels/dpm_solver_step.h"
#include "kernels/loss.h"
#include "kernels/threshold.h"
#include "tests/support/compare.h"
#include "tests/support/threshold_reference.h"

using namespace dd;
using namespace dd::test;

namespace {
Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }
}  // namespace

TEST_CASE("gpu: the fused ddim / x0-form ddpm step matches the cpu", "[gpu][samplers]") {
  DD_TEST_RANDOM(rng);
  const Shape s{3, 7, 5, 3};  // 315 elements: Philox blocks straddle samples
  const Tensor x = from_double(s, rng.uniform(315, -2.0, 2.0)), out = from_double(s, rng.uniform(315, -1.0, 1.0));
  for (int variant = 0; variant < 3; ++variant) {
    INFO("variant " << variant);
    kernels::DdimStepCoefs c;
    c.sqrt_abar = 0.61f;
    c.sqrt_one_minus_abar = 0.79f;
    c.sqrt_abar_prev = 0.7f;
    c.dir = variant == 1 ? 0.0f : 0.6f;
    c.x_coef = variant == 1 ? 0.4f : 0.0f;  // the DDPM posterior mean
    c.sigma = variant == 0 ? 0.0f : 0.3f;
    c.clip = variant == 2 ? 1.0f : 0.0f;
    if (variant == 2) {  // a v-prediction model's output
      c.linear_output = true;
      c.x0_x = 0.61f;
      c.x0_out = -0.79f;
      c.eps_x = 0.79f;
      c.eps_out = 0.61f;
    }
    const uint64_t offset = (uint64_t{1} << 32) + 7;
    Tensor x0c, x0g;
    const Tensor pc = kernels::ddim_step(x, out, c, 5, offset, &x0c);
    const Tensor pg = kernels::ddim_step(gpu(x), gpu(out), c, 5, offset, &x0g);
    // The same float expressions (the GPU may contract a multiply-add) and the same Philox numbers
    // (Box-Muller in double, rounded once): 1e-6 of the terms' size (~4).
    expect_close("x0", x0g.to(Device::CPU), x0c, 1e-6, 4.0);
    expect_close("prev", pg.to(Device::CPU), pc, 1e-6, 4.0);
  }
}

TEST_CASE("gpu: the fused dpm-solver step matches the cpu for every output kind and order", "[gpu][samplers]") {
  DD_TEST_RANDOM(rng);
  const Shape s{2, 9, 7, 3};
  const Tensor x = from_double(s, rng.uniform(378, -2, 2)), out = from_double(s, rng.uniform(378, -1, 1));
  const Tensor m1 = from_double(s, rng.uniform(378, -1, 1)), m2 = from_double(s, rng.uniform(378, -1, 1));
  for (auto kind : {kernels::DpmStepCoefs::Output::Eps, kernels::DpmStepCoefs::Output::V,
                    kernels::DpmStepCoefs::Output::X0}) {
    for (int order = 1; order <= 3; ++order) {
      INFO("output " << static_cast<int>(kind) << " order " << order);
      kernels::DpmStepCoefs k{0.8f, 0.6f, 0.7f, 0.9f, order >= 2 ? -0.45f : 0.0f, order >= 3 ? 0.1f : 0.0f};
      k.output = kind;
      Tensor mc, mg;
      const Tensor u1 = order >= 2 ? m1 : Tensor(), u2 = order >= 3 ? m2 : Tensor();
      const Tensor pc = kernels::dpm_solver_step(x, out, u1, u2, k, &mc);
      const Tensor pg = kernels::dpm_solver_step(gpu(x), gpu(out), u1.defined() ? gpu(u1) : Tensor(),
                                                 u2.defined() ? gpu(u2) : Tensor(), k, &mg);
      // Float expressions of a few terms up to ~4 (contractions may differ): 1e-6 of that.
      expect_close("m0", mg.to(Device::CPU), mc, 1e-6, 4.0);
      expect_close("next", pg.to(Device::CPU), pc, 1e-6, 4.0);
    }
  }
}

TEST_CASE("gpu: the weighted (min-SNR) loss matches the cpu", "[gpu][loss]") {
  DD_TEST_RANDOM(rng);
  const Shape s{5, 9, 9, 3};
  const Tensor p = from_double(s, rng.uniform(1215, -2, 2)), t = from_double(s, rng.uniform(1215, -2, 2));
  const Tensor w = from_double({5}, rng.uniform(5, 0.1, 5.0)), dl = Tensor::full({}, 0.37f);
  for (auto type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
    INFO(kernels::loss_type_name(type));
    // Double sums in different orders, rounded once to float: 1e-6.
    expect_close("forward", kernels::loss_forward_weighted(gpu(p), gpu(t), type, gpu(w)).to(Device::CPU),
                 kernels::loss_forward_weighted(p, t, type, w), 1e-6);
    // The unweighted float expressions, then one float product: bitwise.
    expect_close("backward",
                 kernels::loss_backward_weighted(gpu(p), gpu(t), type, gpu(w), gpu(dl)).to(Device::CPU),
                 kernels::loss_backward_weighted(p, t, type, w, dl), 0.0);
  }
}

TEST_CASE("gpu: the dynamic-threshold scale and the thresholded steps match the cpu", "[gpu][samplers]") {
  DD_TEST_RANDOM(rng);
  // 3 x 3072 (a CIFAR-10 image per sample) and a sample smaller than the block.
  for (const Shape& s : {Shape{3, 32, 32, 3}, Shape{2, 3, 5, 1}}) {
    const Tensor x0 = from_double(s, rng.normal_f32(shape_numel(s), 2.5));
    for (double ratio : {0.0, 0.995, 1.0}) {
      INFO(shape_str(s) << " ratio " << ratio);
      // The same two float32 order statistics and the same lerp: bitwise.
      expect_close("scale", kernels::dynamic_threshold_scale(gpu(x0), ratio, 1.7).to(Device::CPU),
                   kernels::dynamic_threshold_scale(x0, ratio, 1.7), 0.0);
    }
    const Tensor out = from_double(s, rng.uniform(shape_numel(s), -1.0, 1.0));
    const Tensor thresh = kernels::dynamic_threshold_scale(x0, 0.9, 2.0);
    kernels::DdimStepCoefs c;
    c.sqrt_abar = 0.5f;
    c.sqrt_one_minus_abar = 0.8660254f;
    c.sqrt_abar_prev = 0.7f;
    c.dir = 0.6f;
    c.rederive_eps = true;
    Tensor x0c, x0g;
    const Tensor pc = kernels::ddim_step(x0, out, c, 5, 11, &x0c, thresh);
    const Tensor pg = kernels::ddim_step(gpu(x0), gpu(out), c, 5, 11, &x0g, gpu(thresh));
    // The same float expressions (either may contract a multiply-add): 1e-6 of the terms' size.
    expect_close("ddim x0", x0g.to(Device::CPU), x0c, 1e-6, 4.0);
    expect_close("ddim prev", pg.to(Device::CPU), pc, 1e-6, 8.0);
    kernels::DpmStepCoefs k{0.5f, 0.8660254f, 0.3f, 0.6f, 0.0f, 0.0f};
    Tensor mc, mg;
    const Tensor nc = kernels::dpm_solver_step(x0, out, Tensor(), Tensor(), k, &mc, thresh);
    const Tensor ng = kernels::dpm_solver_step(gpu(x0), gpu(out), Tensor(), Tensor(), k, &mg, gpu(thresh));
    expect_close("dpm m0", mg.to(Device::CPU), mc, 1e-6, 4.0);
    expect_close("dpm next", ng.to(Device::CPU), nc, 1e-6, 8.0);
  }
}
