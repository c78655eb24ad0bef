// The precision policy on the GPU against the CPU's reading of it (kernels/cpu/operand_rounding.h):
// one training step's loss and gradients of the seed U-Net (dim_head 32, so the mid attention takes
// the bf16 tensor-core kernels; 3x3 and 1x1 convs the tensor-core convolutions; the time MLP cuBLAS)
// in BF16 and TF32 on each device, from the same weights, timesteps and noise.
//
// What must hold. The CPU rounds the same operands the same way and sums in fp32 in another order;
// the GPU also rounds attention's probabilities to bf16 before P V (the CPU keeps them fp32) and
// accumulates on tensor cores. Those differences are second order next to the policy's own effect,
// the rounding of every operand: so the GPU's step must be much closer to the CPU's step under the
// same policy than the CPU's step under that policy is to fp32. "Much closer" is a quarter: the
// CPU tests measure bf16 vs fp32 at 0.7-1.0% of the whole gradient (tests/test_precision.cpp), and
// order-of-summation effects in fp32 are ~1e-6 relative per GEMM. A GPU path that rounds other
// operands than the CPU models (or none) lands at the fp32 distance and fails.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/var.h"
#include "engine/context.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Step {
  double loss = 0;
  std::vector<float> grad;  // the whole gradient arena, flat
};

Step run_step(const models::UnetConfig& cfg, const Tensor& x0, Device dev, Precision p) {
  const PrecisionScope scope(p);
  Generator init(5);
  models::Unet model(cfg, init);
  model.params().to(dev);
  model.params().zero_grad();
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 100));
  Generator gen(17);
  const ag::Var loss = diffusion.p_losses(model, x0.to(dev), gen);
  ag::Tape::current().backward(loss);
  Step s;
  s.loss = loss.value().item();
  s.grad = model.params().grad_arena().to_vector();
  ag::Tape::current().clear();
  return s;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}
}  // namespace

TEST_CASE("gpu: a BF16/TF32 training step is the CPU's step under the same policy", "[gpu][precision][train_step]") {
  DD_TEST_RANDOM(rng);
  models::UnetConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.channels = 3;
  const Tensor x0 = from_double({3, 12, 12, 3}, rng.uniform(3 * 12 * 12 * 3, -1.0, 1.0));
  const Step cpu32 = run_step(cfg, x0, Device::CPU, Precision::FP32);
  for (const Precision p : {Precision::BF16, Precision::TF32}) {
    INFO("precision " << precision_name(p));
    const Step cpu = run_step(cfg, x0, Device::CPU, p);
    const Step gpu = run_step(cfg, x0, Device::CUDA, p);
    REQUIRE(gpu.grad.size() == cpu.grad.size());
    bool finite = true;
    for (float v : gpu.grad) finite = finite && std::isfinite(v);
    CHECK(finite);
    const double policy = rel_l2(cpu.grad, cpu32.grad), across = rel_l2(gpu.grad, cpu.grad);
    INFO("CPU " << precision_name(p) << " vs CPU fp32: " << policy << "; GPU vs CPU, both " << precision_name(p) << ": "
                << across);
    CHECK(policy > 0);
    CHECK(across <= 0.25 * policy);
    CHECK(std::fabs(gpu.loss - cpu.loss) <= 0.25 * std::fabs(cpu.loss - cpu32.loss) + 1e-6 * std::fabs(cpu.loss));
  }
}
