// The precision policy on the CPU (engine/context.h, kernels/cpu/operand_rounding.h): TF32 and BF16
// round the operands the GPU's tensor-core paths round and compute in fp32, so the CPU runs the GPU's
// reduced-precision numerics and a bf16 training step can be checked here against the fp32 one.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/var.h"
#include "engine/context.h"
#include "engine/dtype.h"
#include "engine/rng.h"
#include "kernels/attention.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/operand_rounding.h"
#include "kernels/linear.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

Tensor random_tensor(Random& rng, const Shape& s, double scale = 1.0) {
  return from_double(s, rng.uniform(shape_numel(s), -scale, scale));
}

Tensor round_all(const Tensor& t, bool bf16) {
  Tensor out = Tensor::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i)
    out.data()[i] = bf16 ? dtype_conv::round_bf16(t.data()[i]) : dtype_conv::round_tf32(t.data()[i]);
  return out;
}

void expect_bitwise(const char* what, const Tensor& a, const Tensor& b) {
  INFO(what);
  REQUIRE(a.shape() == b.shape());
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0);
}
}  // namespace

TEST_CASE("round_tf32 is cvt.rna: nearest, ties away from zero, 13 low bits cleared", "[precision]") {
  CHECK(dtype_conv::round_tf32(1.0f) == 1.0f);
  const float ulp = std::ldexp(1.0f, -10);  // tf32's spacing at 1
  CHECK(dtype_conv::round_tf32(1.0f + ulp / 2) == 1.0f + ulp);    // a tie goes away from zero
  CHECK(dtype_conv::round_tf32(-1.0f - ulp / 2) == -1.0f - ulp);
  CHECK(dtype_conv::round_tf32(std::nextafter(1.0f + ulp / 2, 0.0f)) == 1.0f);
  CHECK(std::isnan(dtype_conv::round_tf32(std::nanf(""))));
  CHECK(dtype_conv::round_tf32(INFINITY) == INFINITY);
  CHECK(dtype_conv::round_tf32(-INFINITY) == -INFINITY);
  CHECK(dtype_conv::round_tf32(std::numeric_limits<float>::max()) == INFINITY);  // past tf32's largest
  DD_TEST_RANDOM(rng);
  for (double v : rng.uniform(4096, -1e6, 1e6)) {
    const float x = static_cast<float>(v);
    const float r = dtype_conv::round_tf32(x);
    CHECK((bits(r) & 0x1fffu) == 0u);
    // Within half of tf32's spacing at x (11 significant bits), measured in double.
    const double spacing = std::ldexp(1.0, std::ilogb(x) - 10);
    CHECK(std::fabs(static_cast<double>(r) - x) <= spacing / 2);
  }
}

TEST_CASE("parse_precision and PrecisionScope", "[precision]") {
  CHECK(parse_precision("bf16") == Precision::BF16);
  CHECK(parse_precision("tf32") == Precision::TF32);
  CHECK(parse_precision("fp32") == Precision::FP32);
  CHECK_THROWS_WITH(parse_precision("fp16", "--precision"), Catch::Contains("--precision") && Catch::Contains("fp16"));
  REQUIRE(current_context().precision() == Precision::FP32);
  {
    const PrecisionScope bf16(Precision::BF16);
    CHECK(current_context().precision() == Precision::BF16);
    {
      const PrecisionScope fp32(Precision::FP32);
      CHECK(current_context().precision() == Precision::FP32);
    }
    CHECK(current_context().precision() == Precision::BF16);
  }
  CHECK(current_context().precision() == Precision::FP32);
}

// Under a policy each op equals, bit for bit, the fp32 op on the operands rounded as the GPU rounds
// them (kernels/cpu/operand_rounding.h's table); the bias gradient sums the unrounded dy.
TEST_CASE("CPU ops under TF32/BF16 are the fp32 ops on the GPU path's rounded operands", "[precision]") {
  DD_TEST_RANDOM(rng);
  for (const Precision p : {Precision::TF32, Precision::BF16}) {
    const bool bf16 = p == Precision::BF16;
    INFO("precision " << precision_name(p));
    for (const int k : {1, 3}) {
      INFO("conv " << k << "x" << k);
      const int pad = k / 2;
      const Tensor x = random_tensor(rng, {2, 7, 5, 6}), w = random_tensor(rng, {5, k, k, 6}, 0.5),
                   b = random_tensor(rng, {5}), dy = random_tensor(rng, {2, 7, 5, 5});
      Tensor y;
      kernels::Conv2dGrads g;
      {
        const PrecisionScope scope(p);
        y = kernels::conv2d_forward(x, w, b, pad);
        g = kernels::conv2d_backward(x, w, dy, pad, true, true, true);
      }
      expect_bitwise("y", y, kernels::conv2d_forward(round_all(x, bf16), round_all(w, bf16), b, pad));
      const kernels::Conv2dGrads r =
          kernels::conv2d_backward(round_all(x, bf16), round_all(w, bf16), round_all(dy, bf16), pad, true, true, false);
      expect_bitwise("dx", g.dx, r.dx);
      expect_bitwise("dw", g.dw, r.dw);
      expect_bitwise("dbias", g.dbias, kernels::conv2d_backward(x, w, dy, pad, false, false, true).dbias);
      // Not vacuous: the rounding changed the result.
      CHECK(std::memcmp(y.data(), kernels::conv2d_forward(x, w, b, pad).data(), sizeof(float) * y.numel()) != 0);
    }
    {
      INFO("linear: cuBLAS's TF32 math under both policies");
      const Tensor x = random_tensor(rng, {9, 13}), w = random_tensor(rng, {4, 13}), b = random_tensor(rng, {4}),
                   dy = random_tensor(rng, {9, 4});
      Tensor y;
      kernels::LinearGrads g;
      {
        const PrecisionScope scope(p);
        y = kernels::linear_forward(x, w, b);
        g = kernels::linear_backward(x, w, dy, true, true, true);
      }
      expect_bitwise("y", y, kernels::linear_forward(round_all(x, false), round_all(w, false), b));
      const kernels::LinearGrads r =
          kernels::linear_backward(round_all(x, false), round_all(w, false), round_all(dy, false), true, true, false);
      expect_bitwise("dx", g.dx, r.dx);
      expect_bitwise("dw", g.dw, r.dw);
      expect_bitwise("dbias", g.dbias, kernels::linear_backward(x, w, dy, false, false, true).dbias);
    }
    for (const int64_t dh : {16, 32, 160}) {
      // 32: the bf16 tensor-core kernels under BF16 (fp32 under TF32); 16: fp32 under both;
      // 160: cuBLAS GEMMs, tf32 under both.
      INFO("attention dim_head " << dh);
      const int64_t heads = 2, n = 5;
      const Tensor qkv = random_tensor(rng, {1, n, 1, 3 * heads * dh}), dy = random_tensor(rng, {1, n, 1, heads * dh});
      Tensor y, dq;
      {
        const PrecisionScope scope(p);
        y = kernels::attention_forward(qkv, heads, dh);
        dq = kernels::attention_backward(qkv, dy, heads, dh);
      }
      const kernels::cpu::OperandRounding r = kernels::cpu::attention_rounding(p, dh);
      const kernels::cpu::OperandRounding want = dh == 160 ? kernels::cpu::OperandRounding::TF32
                                                 : dh == 32 && bf16 ? kernels::cpu::OperandRounding::BF16
                                                                    : kernels::cpu::OperandRounding::None;
      CHECK(r == want);
      const Tensor q2 = kernels::cpu::rounded(qkv, r), dy2 = kernels::cpu::rounded(dy, r);
      expect_bitwise("out", y, kernels::attention_forward(q2, heads, dh));
      expect_bitwise("dqkv", dq, kernels::attention_backward(q2, dy2, heads, dh));
    }
  }
}

namespace {
struct StepResult {
  double loss = 0;
  std::vector<std::pair<std::string, Tensor>> grads;
};

// One forward and backward of the diffusion loss from fixed weights and draws, under policy p.
StepResult loss_and_grads(const models::UnetConfig& cfg, const Tensor& x0, Precision p) {
  const PrecisionScope scope(p);
  Generator init(5);
  models::Unet model(cfg, init);
  model.params().zero_grad();
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 100));
  Generator gen(17);
  const ag::Var loss = diffusion.p_losses(model, x0, gen);
  ag::Tape::current().backward(loss);
  StepResult r;
  r.loss = loss.value().item();
  for (const auto& prm : model.params().all()) r.grads.emplace_back(prm.name, prm.var.grad().clone());
  ag::Tape::current().clear();
  return r;
}

}  // namespace

// A whole bf16 training step (the seed U-Net: weight-standardised 3x3 convs, 1x1 convs, the linear
// attention and the full attention at dim_head 32, the time MLP) against the fp32 step from the same
// weights, timesteps and noise.
//
// The bound. bf16 keeps 8 significant bits: rounding to nearest moves an operand by a relative
// error spread evenly over [-u, u], u = 2^-8, i.e. u/sqrt(3) RMS, and a product of two rounded
// operands by sqrt(2/3) u RMS. Rounding errors are independent and of random sign, so a GEMM's
// output moves by about sqrt(2/3) u relatively (the probabilistic analysis of Higham and Mary, 2019),
// and L such GEMMs in sequence add in quadrature: sqrt(2/3) u sqrt(L). This U-Net (dim 8,
// dim_mults 1,2) has L = 40 rounded GEMMs on its longest forward path (init conv; per level two
// ResNet blocks of two convs, the linear attention's two 1x1s and a down/up conv, down and up; the
// mid block's convs and its attention's four products; the final block and conv); a gradient comes
// back through them, 2L. Estimates: loss sqrt(2/3) u sqrt(40) = 0.020, gradients sqrt(2/3) u
// sqrt(80) = 0.029 relative L2. The checks allow 4x that for the loss and the whole gradient, and
// 8x per tensor against the tensor's norm plus its share of the whole gradient's norm (a bias whose
// gradient nearly cancels over the batch has a tiny norm of its own). Measured over 28 random
// seeds (2026-11-27): loss 6e-6 to 1.3e-3, whole gradient 0.007 to 0.010, below the estimates
// (most paths are shorter than the longest). A rounding skipped shows in the last check: the step
// must differ from fp32 by more than tf32 rounding alone would.
TEST_CASE("a bf16 training step tracks the fp32 step within the bf16 bound", "[precision][train]") {
  DD_TEST_RANDOM(rng);
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  const Tensor x0 = random_tensor(rng, {2, 8, 8, 1});
  const StepResult f = loss_and_grads(cfg, x0, Precision::FP32);
  const StepResult h = loss_and_grads(cfg, x0, Precision::BF16);
  const double u = std::ldexp(1.0, -8), per_gemm = std::sqrt(2.0 / 3.0) * u, L = 40;
  const double loss_est = per_gemm * std::sqrt(L), grad_est = per_gemm * std::sqrt(2 * L);
  const double loss_rel = std::fabs(h.loss - f.loss) / std::fabs(f.loss);
  INFO("loss fp32 " << f.loss << " bf16 " << h.loss << ": relative error " << loss_rel);
  CHECK(loss_rel <= 4 * loss_est);
  REQUIRE(f.grads.size() == h.grads.size());
  double all_sq = 0, all_diff_sq = 0;
  int64_t all_n = 0;
  for (size_t i = 0; i < f.grads.size(); ++i) {
    const Tensor& a = h.grads[i].second;
    const Tensor& b = f.grads[i].second;
    for (int64_t k = 0; k < b.numel(); ++k) {
      const double d = static_cast<double>(a.data()[k]) - b.data()[k];
      all_diff_sq += d * d;
      all_sq += static_cast<double>(b.data()[k]) * b.data()[k];
    }
    all_n += b.numel();
  }
  const double whole = std::sqrt(all_diff_sq / all_sq);
  INFO("whole gradient relative L2 " << whole << " (estimate " << grad_est << ")");
  CHECK(whole <= 4 * grad_est);
  for (size_t i = 0; i < f.grads.size(); ++i) {
    const Tensor& a = h.grads[i].second;
    const Tensor& b = f.grads[i].second;
    double diff = 0, norm = 0;
    for (int64_t k = 0; k < b.numel(); ++k) {
      const double d = static_cast<double>(a.data()[k]) - b.data()[k];
      diff += d * d;
      norm += static_cast<double>(b.data()[k]) * b.data()[k];
    }
    const double share = std::sqrt(all_sq * static_cast<double>(b.numel()) / static_cast<double>(all_n));
    INFO(f.grads[i].first << ": |diff| " << std::sqrt(diff) << ", |grad| " << std::sqrt(norm) << ", share " << share);
    CHECK(std::sqrt(diff) <= 8 * grad_est * (std::sqrt(norm) + share));
  }
  // Not vacuous: the policy changed the numbers by more than tf32 rounding alone would (2^-11).
  CHECK(whole > std::ldexp(1.0, -11));
}
