// What a stride-1 conv keeps of its input under Precision::BF16 (autograd/conv2d_keep.h): x's bf16
// copy, which is the operand that policy rounds x to anyway. Every result must be bitwise the one
// the kernels give for the fp32 x; two convs reading one x keep one copy; x's fp32 value is freed.
// And what the GroupNorms keep of their inputs: bf16 copies (the Block's of its conv's output h),
// the same forward and the gradients at the rounded inputs.
#include <catch2/catch.hpp>

#include <string>

#include "autograd/conv2d.h"
#include "autograd/conv2d_keep.h"
#include "autograd/conv2d_norm_act.h"
#include "autograd/elementwise.h"
#include "autograd/group_norm.h"
#include "autograd/group_norm_act.h"
#include "autograd/linear_attention.h"
#include "autograd/weight_standardize.h"
#include "engine/context.h"
#include "engine/device.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_norm_act.h"
#include "kernels/group_norm.h"
#include "kernels/group_norm_act.h"
#include "kernels/linear_attention.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {

struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};

Tensor rnd(Random& rng, const Shape& s, double scale = 1.0) {
  return from_double(s, rng.normal_f32(shape_numel(s), scale));
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

// ag::set_keep_bf16_conv_inputs(on) for the scope's lifetime.
struct KeepBf16 {
  explicit KeepBf16(bool on) { ag::set_keep_bf16_conv_inputs(on); }
  ~KeepBf16() { ag::set_keep_bf16_conv_inputs(true); }
};
// ag::set_keep_bf16_norm_inputs(on) for the scope's lifetime.
struct KeepNormBf16 {
  explicit KeepNormBf16(bool on) { ag::set_keep_bf16_norm_inputs(on); }
  ~KeepNormBf16() { ag::set_keep_bf16_norm_inputs(true); }
};

// Precision::BF16 for the scope's lifetime.
struct Bf16 {
  PrecisionScope scope{Precision::BF16};
};

// One training step of a small seed U-Net (fresh weights from one seed, x0, the draw's timesteps and
// noise) under the current policy and keep switches.
struct UnetStep {
  double loss;
  std::vector<float> grads;  // the whole gradient arena
  std::size_t kept;          // live CPU tensors' bytes as the backward starts: what the tape holds
};
UnetStep unet_step(const Tensor& x0, uint64_t draw) {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = x0.dim(-1);
  Generator init(5);
  models::Unet model(cfg, init);
  model.params().zero_grad();
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 100));
  Generator gen(draw);
  ag::Tape::current().clear();
  const std::size_t start = host_mem::stats().in_use;
  const ag::Var loss = diffusion.p_losses(model, x0, gen);
  const std::size_t kept = host_mem::stats().in_use - start;
  ag::Tape::current().backward(loss);
  UnetStep r{loss.value().item(), model.params().grad_arena().to_vector(), kept};
  ag::Tape::current().clear();
  return r;
}

}  // namespace

TEST_CASE("conv2d under BF16 keeps x's bf16 copy with y and every gradient the fp32 x's bit for bit",
          "[conv2d][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  struct Geo {
    int64_t b, h, w, ci, co, k;
  };
  // Odd channels (no 8-wide chunk), a 1x1, and 32 channels at 8x8 (the CPU's Winograd F(2x2)).
  for (const Geo c : {Geo{2, 5, 7, 5, 6, 3}, Geo{1, 4, 6, 13, 7, 1}, Geo{2, 8, 8, 32, 32, 3}}) {
    const int p = static_cast<int>(c.k / 2);
    INFO("x [" << c.b << ", " << c.h << ", " << c.w << ", " << c.ci << "], w [" << c.co << ", " << c.k << ", "
               << c.k << ", " << c.ci << "]");
    const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.3);
    const Tensor bias = rnd(rng, {c.co}), r = rnd(rng, {c.b, c.h, c.w, c.co});
    ag::Tape::current().clear();
    ag::Var xv(x, true), wv(w, true), bv(bias, true);
    ag::Var y = ag::conv2d(xv, wv, bv, p);
    CHECK(xv.has_bf16_value());  // taken
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    const kernels::Conv2dGrads k = kernels::conv2d_backward(x, w, r, p, true, true, true);
    CHECK(same_bits(y.value(), kernels::conv2d_forward(x, w, bias, p)));
    CHECK(same_bits(xv.grad(), k.dx));
    CHECK(same_bits(wv.grad(), k.dw));
    CHECK(same_bits(bv.grad(), k.dbias));
  }
}

TEST_CASE("the other conv ops under BF16 keep bf16 copies with the fp32 x's results",
          "[conv2d][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  const int64_t B = 2, H = 5, W = 6, C0 = 3, C1 = 6, Co = 9;
  const Tensor x0 = rnd(rng, {B, H, W, C0}), x1 = rnd(rng, {B, H, W, C1});
  const Tensor w = rnd(rng, {Co, 3, 3, C0 + C1}, 0.3), bias = rnd(rng, {Co});
  SECTION("parts") {
    const Tensor r = rnd(rng, {B, H, W, Co});
    ag::Var a(x0, true), b(x1, true), wv(w, true);
    ag::Var y = ag::conv2d(std::vector<ag::Var>{a, b}, wv, ag::Var(bias), 1);
    CHECK((a.has_bf16_value() && b.has_bf16_value()));
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    CHECK(same_bits(y.value(), kernels::conv2d_forward_parts({x0, x1}, w, bias, 1)));
    const kernels::Conv2dPartsGrads k = kernels::conv2d_backward_parts({x0, x1}, w, r, 1, true, true, false);
    CHECK(same_bits(a.grad(), k.dx.at(0)));
    CHECK(same_bits(b.grad(), k.dx.at(1)));
    CHECK(same_bits(wv.grad(), k.dw));
  }
  SECTION("up2") {
    const Tensor r = rnd(rng, {B, 2 * H, 2 * W, Co});
    const Tensor wu = rnd(rng, {Co, 3, 3, C1}, 0.3);
    ag::Var b(x1, true), wv(wu, true);
    ag::Var y = ag::conv2d_up2(b, wv, ag::Var(), 1);
    CHECK(b.has_bf16_value());
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    CHECK(same_bits(y.value(), kernels::conv2d_forward_up2(x1, wu, Tensor(), 1)));
    const kernels::Conv2dGrads k = kernels::conv2d_backward_up2(x1, wu, r, 1, true, true, false);
    CHECK(same_bits(b.grad(), k.dx));
    CHECK(same_bits(wv.grad(), k.dw));
  }
  SECTION("unshuffle2") {
    const Tensor xe = rnd(rng, {B, 4, 6, C1}), wu = rnd(rng, {Co, 1, 1, 4 * C1}, 0.3), r = rnd(rng, {B, 2, 3, Co});
    ag::Var b(xe, true), wv(wu, true);
    ag::Var y = ag::conv2d_unshuffle2(b, wv, ag::Var(bias), 0);
    CHECK(b.has_bf16_value());
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    CHECK(same_bits(y.value(), kernels::conv2d_forward_unshuffle2(xe, wu, bias, 0)));
    const kernels::Conv2dGrads k = kernels::conv2d_backward_unshuffle2(xe, wu, r, 0, true, true, false);
    CHECK(same_bits(b.grad(), k.dx));
    CHECK(same_bits(wv.grad(), k.dw));
  }
  SECTION("the Block: conv2d_group_norm_act") {
    const int64_t groups = 3;
    const Tensor gamma = rnd(rng, {Co}), beta = rnd(rng, {Co}, 0.5), scale = rnd(rng, {B, Co}, 0.5),
                 shift = rnd(rng, {B, Co}, 0.5), r = rnd(rng, {B, H, W, Co});
    // Keeping h in bf16 too (the default), or h in fp32: each the kernels' results for that h.
    const bool bf16_h = GENERATE(true, false);
    INFO("h kept in " << (bf16_h ? "bf16" : "fp32"));
    const KeepNormBf16 keep_h(bf16_h);
    ag::Var a(x0, true), b(x1, true), wv(w, true), bv(bias, true), g(gamma, true);
    ag::Var y = ag::conv2d_group_norm_act({a, b}, wv, bv, 1, g, ag::Var(beta), ag::Var(scale), ag::Var(shift), groups);
    CHECK((a.has_bf16_value() && b.has_bf16_value()));
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    const kernels::Conv2dNormActOut f =
        kernels::conv2d_group_norm_act_forward({x0, x1}, w, bias, 1, gamma, beta, scale, shift, groups, 1e-5f, bf16_h);
    CHECK(f.h.dtype() == (bf16_h ? DType::BF16 : DType::F32));
    CHECK(same_bits(y.value(), f.n.y));
    const kernels::Conv2dNormActGrads k = kernels::conv2d_group_norm_act_backward(
        {x0, x1}, w, f.h, 1, gamma, beta, scale, shift, f.n.mean, f.n.rstd, r, true, true, true);
    CHECK(same_bits(a.grad(), k.dx.at(0)));
    CHECK(same_bits(b.grad(), k.dx.at(1)));
    CHECK(same_bits(wv.grad(), k.dw));
    CHECK(same_bits(bv.grad(), k.dbias));
    CHECK(same_bits(g.grad(), k.dgamma));
  }
  SECTION("the linear attention's recomputed to_qkv") {
    const int64_t heads = 2, dim_head = 4, C = 8;
    const Tensor x = rnd(rng, {B, H, W, C}), wq = rnd(rng, {3 * heads * dim_head, 1, 1, C}, 0.3);
    const Tensor r = rnd(rng, {B, H, W, heads * dim_head});
    ag::Var xv(x, true), wv(wq, true);
    ag::Var y = ag::linear_attention_qkv(xv, wv, heads, dim_head);
    CHECK(xv.has_bf16_value());
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    const Tensor qkv = kernels::conv2d_forward(x, wq, Tensor(), 0);
    CHECK(same_bits(y.value(), kernels::linear_attention_forward(qkv, heads, dim_head)));
    const Tensor dqkv = kernels::linear_attention_backward(qkv, r, heads, dim_head);
    const kernels::Conv2dGrads k = kernels::conv2d_backward(x, wq, dqkv, 0, true, true, false);
    CHECK(same_bits(xv.grad(), k.dx));
    CHECK(same_bits(wv.grad(), k.dw));
  }
}

TEST_CASE("group_norm and group_norm_act under BF16 keep x's bf16 copy, the forward unchanged",
          "[group_norm][group_norm_act][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  const int64_t B = 2, C = 12, G = 3;
  const Tensor x = rnd(rng, {B, 5, 6, C}, 2.0), gamma = rnd(rng, {C}), beta = rnd(rng, {C}), r = rnd(rng, {B, 5, 6, C});
  const Tensor scale = rnd(rng, {B, C}, 0.5), shift = rnd(rng, {B, C}, 0.5);
  const bool keep = GENERATE(true, false);
  INFO("norm inputs kept in " << (keep ? "bf16" : "fp32"));
  const KeepNormBf16 keep_x(keep);
  const Tensor xk = keep ? x.to(DType::BF16) : x;  // what the backward must read
  SECTION("group_norm") {
    ag::Tape::current().clear();
    ag::Var xv(x, true), g(gamma, true), bt(beta, true);
    ag::Var y = ag::group_norm(xv, g, bt, G, 1e-5f);
    CHECK(xv.has_bf16_value() == keep);
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    const kernels::GroupNormOut f = kernels::group_norm_forward(x, gamma, beta, G, 1e-5f);
    CHECK(same_bits(y.value(), f.y));
    const kernels::GroupNormGrads k = kernels::group_norm_backward(xk, gamma, f.mean, f.rstd, r);
    CHECK(same_bits(xv.grad(), k.dx));
    CHECK(same_bits(g.grad(), k.dgamma));
    CHECK(same_bits(bt.grad(), k.dbeta));
  }
  SECTION("group_norm_act") {
    ag::Tape::current().clear();
    ag::Var xv(x, true), g(gamma, true), sc(scale, true);
    ag::Var y = ag::group_norm_act(xv, g, ag::Var(beta), sc, ag::Var(shift), G, 1e-5f);
    CHECK(xv.has_bf16_value() == keep);
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    const kernels::GroupNormActOut f = kernels::group_norm_act_forward(x, gamma, beta, scale, shift, G, 1e-5f);
    CHECK(same_bits(y.value(), f.y));
    const kernels::GroupNormActGrads k =
        kernels::group_norm_act_backward(xk, gamma, beta, scale, shift, f.mean, f.rstd, r);
    CHECK(same_bits(xv.grad(), k.dx));
    CHECK(same_bits(g.grad(), k.dgamma));
    CHECK(same_bits(sc.grad(), k.dscale));
  }
}

TEST_CASE("group_norm_backward reads a bf16 x as its values and refuses other dtypes", "[group_norm]") {
  DD_TEST_RANDOM(rng);
  const Tensor x = rnd(rng, {2, 3, 5, 12}, 2.0), gamma = rnd(rng, {12}), beta = rnd(rng, {12});
  const Tensor dy = rnd(rng, x.shape());
  const kernels::GroupNormOut f = kernels::group_norm_forward(x, gamma, beta, 4, 1e-5f);
  const Tensor xb = x.to(DType::BF16);
  const kernels::GroupNormGrads a = kernels::group_norm_backward(xb, gamma, f.mean, f.rstd, dy);
  const kernels::GroupNormGrads b = kernels::group_norm_backward(xb.to(DType::F32), gamma, f.mean, f.rstd, dy);
  CHECK(a.dx.dtype() == DType::F32);
  CHECK(same_bits(a.dx, b.dx));
  CHECK(same_bits(a.dgamma, b.dgamma));
  CHECK(same_bits(a.dbeta, b.dbeta));
  CHECK_THROWS_WITH(kernels::group_norm_backward(x.to(DType::F16), gamma, f.mean, f.rstd, dy),
                    Catch::Contains("group_norm_backward") && Catch::Contains("x [2,3,5,12]") &&
                        Catch::Contains("F32 or BF16"));
}

TEST_CASE("a PreNorm input read by a conv too keeps one bf16 copy and frees its fp32 value",
          "[group_norm][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  const Shape xs{4, 16, 16, 32};
  const int64_t n = shape_numel(xs);
  const ag::Var w(rnd(rng, {8, 1, 1, 32}), true), g(rnd(rng, {32}), true), bt(rnd(rng, {32}), true);
  ag::Tape::current().clear();
  auto held = [start = host_mem::stats().in_use] { return host_mem::stats().in_use - start; };
  ag::Var loss;
  {
    ag::Var x(rnd(rng, xs), false);
    ag::Var y1 = ag::group_norm(x, g, bt, 1, 1e-5f), y2 = ag::conv2d(x, w, ag::Var(), 0);
    loss = ag::add(ag::sum(y1), ag::sum(y2));
  }
  // x once in bf16, 2 bytes an element (the outputs are freed; the statistics are a few bytes).
  CHECK(held() >= static_cast<std::size_t>(n) * 2);
  CHECK(held() < static_cast<std::size_t>(n) * 3);
  ag::Tape::current().backward(loss);
  CHECK(w.has_grad());
  CHECK(g.has_grad());
}

TEST_CASE("two convs reading one input under BF16 keep one bf16 copy and free its fp32 value",
          "[conv2d][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Shape xs{4, 16, 16, 32};
  const int64_t n = shape_numel(xs);
  const ag::Var w1(rnd(rng, {8, 1, 1, 32}), true), w2(rnd(rng, {8, 3, 3, 32}), true);
  for (Precision prec : {Precision::BF16, Precision::FP32}) {
    INFO(precision_name(prec));
    const PrecisionScope scope(prec);
    ag::Tape::current().clear();
    auto held = [start = host_mem::stats().in_use] { return host_mem::stats().in_use - start; };
    ag::Var loss;
    {
      ag::Var x(rnd(rng, xs), false);
      ag::Var y1 = ag::conv2d(x, w1, ag::Var(), 0), y2 = ag::conv2d(x, w2, ag::Var(), 1);
      loss = ag::add(ag::sum(y1), ag::sum(y2));  // sum's backward reads no value
    }
    // What the closures hold: x once, 2 bytes an element under BF16, 4 under FP32 (the outputs
    // and the scalars are freed or a few bytes).
    const std::size_t per = prec == Precision::BF16 ? 2 : 4;
    CHECK(held() >= n * per);
    CHECK(held() < n * per + n);
    ag::Tape::current().backward(loss);
    CHECK(w1.has_grad());
    CHECK(w2.has_grad());
    w1.zero_grad();
    w2.zero_grad();
  }
}

TEST_CASE("a variable updated in place between steps gets a fresh bf16 copy", "[conv2d][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  // x is a conv's input that persists across steps and changes in place (as a parameter does): the
  // copy a step's forward made is dropped from x when that step's backward starts.
  const Tensor w = rnd(rng, {4, 3, 3, 5}, 0.3), r = rnd(rng, {2, 4, 6, 4});
  ag::Var x(rnd(rng, {2, 4, 6, 5}), true), wv(w, true);
  for (int step = 0; step < 2; ++step) {
    INFO("step " << step);
    ag::Tape::current().clear();
    x.zero_grad();
    wv.zero_grad();
    ag::Var y = ag::conv2d(x, wv, ag::Var(), 1);
    CHECK(x.has_bf16_value());
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    CHECK_FALSE(x.has_bf16_value());  // dropped when the backward starts
    CHECK(same_bits(y.value(), kernels::conv2d_forward(x.value(), w, Tensor(), 1)));
    CHECK(same_bits(wv.grad(), kernels::conv2d_backward(x.value(), w, r, 1, false, true, false).dw));
    x.value().copy_from(rnd(rng, x.shape()));
  }
}

TEST_CASE("conv2d kernels read a bf16 x as its values, under every policy", "[conv2d][conv2d_keep]") {
  DD_TEST_RANDOM(rng);
  const Tensor x = rnd(rng, {2, 5, 6, 7}), w = rnd(rng, {4, 3, 3, 7}, 0.3), dy = rnd(rng, {2, 5, 6, 4});
  const Tensor xb = x.to(DType::BF16), xr = xb.to(DType::F32);  // xr: the values xb holds
  for (Precision prec : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    INFO(precision_name(prec));
    const PrecisionScope scope(prec);
    CHECK(same_bits(kernels::conv2d_forward(xb, w, Tensor(), 1), kernels::conv2d_forward(xr, w, Tensor(), 1)));
    const kernels::Conv2dGrads a = kernels::conv2d_backward(xb, w, dy, 1, true, true, true);
    const kernels::Conv2dGrads b = kernels::conv2d_backward(xr, w, dy, 1, true, true, true);
    CHECK(same_bits(a.dx, b.dx));
    CHECK(same_bits(a.dw, b.dw));
    CHECK(same_bits(a.dbias, b.dbias));
    CHECK(a.dx.dtype() == DType::F32);
  }
  // Under BF16, x's rounding is what the conv reads anyway.
  const PrecisionScope scope(Precision::BF16);
  CHECK(same_bits(kernels::conv2d_forward(xb, w, Tensor(), 1), kernels::conv2d_forward(x, w, Tensor(), 1)));
  CHECK(same_bits(kernels::conv2d_backward(xb, w, dy, 1, false, true, false).dw,
                  kernels::conv2d_backward(x, w, dy, 1, false, true, false).dw));
  // Another dtype is refused, naming x.
  CHECK_THROWS_WITH(kernels::conv2d_forward(x.to(DType::F16), w, Tensor(), 1),
                    Catch::Contains("x [2,5,6,7]") && Catch::Contains("must be float32 or bfloat16"));
}

TEST_CASE("conv2d kernels and the Block read a bf16 w as its values", "[conv2d][conv2d_norm_act][conv2d_keep]") {
  DD_TEST_RANDOM(rng);
  const Tensor x0 = rnd(rng, {2, 5, 6, 3}), x1 = rnd(rng, {2, 5, 6, 5}), w = rnd(rng, {6, 3, 3, 8}, 0.3);
  const Tensor bias = rnd(rng, {6}), gamma = rnd(rng, {6}), beta = rnd(rng, {6}), dy = rnd(rng, {2, 5, 6, 6});
  const Tensor wb = w.to(DType::BF16), wr = wb.to(DType::F32);  // wr: the values wb holds
  for (Precision prec : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    INFO(precision_name(prec));
    const PrecisionScope scope(prec);
    // Under BF16 w's rounding is what the conv reads anyway; otherwise its values are read.
    const Tensor& same = prec == Precision::BF16 ? w : wr;
    CHECK(same_bits(kernels::conv2d_forward_parts({x0, x1}, wb, bias, 1),
                    kernels::conv2d_forward_parts({x0, x1}, same, bias, 1)));
    const kernels::Conv2dPartsGrads a = kernels::conv2d_backward_parts({x0, x1}, wb, dy, 1, true, true, false);
    const kernels::Conv2dPartsGrads b = kernels::conv2d_backward_parts({x0, x1}, same, dy, 1, true, true, false);
    CHECK(same_bits(a.dx.at(0), b.dx.at(0)));
    CHECK(same_bits(a.dx.at(1), b.dx.at(1)));
    CHECK(same_bits(a.dw, b.dw));
    CHECK(a.dw.dtype() == DType::F32);
    const kernels::Conv2dNormActOut fa =
        kernels::conv2d_group_norm_act_forward({x0, x1}, wb, bias, 1, gamma, beta, Tensor(), Tensor(), 2);
    const kernels::Conv2dNormActOut fb =
        kernels::conv2d_group_norm_act_forward({x0, x1}, same, bias, 1, gamma, beta, Tensor(), Tensor(), 2);
    CHECK(same_bits(fa.n.y, fb.n.y));
    const kernels::Conv2dNormActGrads ga = kernels::conv2d_group_norm_act_backward(
        {x0, x1}, wb, fa.h, 1, gamma, beta, Tensor(), Tensor(), fa.n.mean, fa.n.rstd, dy, true, true, true);
    const kernels::Conv2dNormActGrads gb = kernels::conv2d_group_norm_act_backward(
        {x0, x1}, same, fb.h, 1, gamma, beta, Tensor(), Tensor(), fb.n.mean, fb.n.rstd, dy, true, true, true);
    CHECK(same_bits(ga.dx.at(1), gb.dx.at(1)));
    CHECK(same_bits(ga.dw, gb.dw));
  }
  // Another dtype is refused, naming w; a strided conv, whose kernels read fp32 only, refuses bf16.
  CHECK_THROWS_WITH(kernels::conv2d_forward(x1, w.to(DType::F16).reshape({6, 3, 3, 8}), Tensor(), 1),
                    Catch::Contains("w [6,3,3,8]") && Catch::Contains("must be float32 or bfloat16"));
  kernels::Conv2dGeometry strided;
  strided.stride = 2;
  strided.pad_top = strided.pad_left = strided.pad_bottom = strided.pad_right = 1;
  CHECK_THROWS_WITH(kernels::conv2d_forward(rnd(rng, {2, 5, 6, 8}), wb, Tensor(), strided),
                    Catch::Contains("w [6,3,3,8]") && Catch::Contains("must be float32 (a strided"));
}

TEST_CASE("the Block under BF16 keeps its standardised weight's bf16 copy and a parameter's own value",
          "[conv2d_norm_act][conv2d_keep][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  const int64_t C = 64;
  const Tensor x = rnd(rng, {1, 4, 4, C}), gamma = rnd(rng, {C}), beta = rnd(rng, {C}), r = rnd(rng, {1, 4, 4, C});
  // A parameter: its gradient lives in a buffer of its own, as in a parameter set's arena.
  const ag::Var param(rnd(rng, {C, 3, 3, C}, 0.3), true);
  param.attach_grad_buffer(Tensor::zeros(param.shape()));
  const std::size_t n = static_cast<std::size_t>(param.value().numel());
  auto block = [&](const ag::Var& w) {
    return ag::conv2d_group_norm_act({ag::Var(x)}, w, ag::Var(), 1, ag::Var(gamma), ag::Var(beta), ag::Var(),
                                     ag::Var(), 8);
  };
  // What the tape holds once the forward is done with the standardised weight, and the gradient.
  auto run = [&](bool keep) {
    const KeepBf16 keep_w(keep);
    ag::Tape::current().clear();
    param.zero_grad();
    const std::size_t start = host_mem::stats().in_use;
    ag::Var y;
    {
      const ag::Var ws = ag::weight_standardize(param);
      y = block(ws);
      CHECK(ws.has_bf16_value() == keep);
    }
    const std::size_t held = host_mem::stats().in_use - start;
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    return std::make_pair(held, param.grad().to_vector());
  };
  const auto kept = run(true), full = run(false);
  INFO("held " << kept.first << " bytes with the copy, " << full.first << " without; the weight has " << n);
  // ws itself (4 bytes a weight) gives way to its copy (2); x, which outlives the step here, adds its
  // bf16 copy (2 bytes an element); the rest is the same, and so is every bit.
  CHECK(full.first - kept.first == 2 * n - 2 * static_cast<std::size_t>(x.numel()));
  CHECK(kept.second == full.second);
  // A parameter persists: the Block keeps its own value, no copy.
  ag::Tape::current().clear();
  const ag::Var yp = block(param);
  CHECK_FALSE(param.has_bf16_value());
  ag::Tape::current().clear();
}

TEST_CASE("concat keeps bf16 bits and refuses mixed dtypes and concat_widening widens a mix", "[concat][conv2d_keep]") {
  DD_TEST_RANDOM(rng);
  const Tensor a = rnd(rng, {2, 3, 5}), b = rnd(rng, {2, 3, 2});
  const Tensor ab = a.to(DType::BF16), bb = b.to(DType::BF16);
  const Tensor c = kernels::concat({ab, bb});
  CHECK(c.dtype() == DType::BF16);
  CHECK(same_bits(c.to(DType::F32), kernels::concat({ab.to(DType::F32), bb.to(DType::F32)})));
  CHECK_THROWS_WITH(kernels::concat({ab, b}), Catch::Contains("must all be float32 or all bfloat16"));
  const Tensor m = kernels::concat_widening({ab, b});
  CHECK(m.dtype() == DType::F32);
  CHECK(same_bits(m, kernels::concat({ab.to(DType::F32), b})));
  CHECK(kernels::concat_widening({ab, bb}).dtype() == DType::BF16);
}

TEST_CASE("a bf16 U-Net step keeping bf16 conv inputs has the same loss and gradients and holds less",
          "[conv2d_keep][unet][precision]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  const Tensor x0 = rnd(rng, {2, 16, 16, 3});
  const uint64_t draw = rng.engine()();
  auto run = [&](bool keep_bf16) {
    // The GroupNorms keep bf16 inputs in both runs (the default). With the switch on the linear
    // attention also writes its output, which only to_out reads, in bf16 (ag::conv_reads_bf16).
    const KeepBf16 keep(keep_bf16);
    return unet_step(x0, draw);
  };
  const UnetStep kept = run(true), full = run(false);
  INFO("held for the backward: " << kept.kept << " bytes keeping bf16 copies, " << full.kept << " keeping fp32");
  CHECK(kept.loss == full.loss);
  CHECK(kept.grads == full.grads);
  // Most conv inputs are kept by nothing else (measured: 30% less held for the backward at this
  // size); the GroupNorms' inputs and the Blocks' conv outputs stay fp32.
  CHECK(kept.kept < 0.8 * full.kept);
}

TEST_CASE("a bf16 U-Net step keeping the GroupNorms' inputs in bf16 has the same loss and holds less",
          "[conv2d_keep][unet][precision]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Bf16 bf16;
  const Tensor x0 = rnd(rng, {2, 16, 16, 3});
  const uint64_t draw = rng.engine()();
  auto run = [&](bool keep_bf16) {
    const KeepNormBf16 keep(keep_bf16);
    return unet_step(x0, draw);
  };
  const UnetStep half = run(true), full = run(false);
  INFO("held for the backward: " << half.kept << " bytes with bf16 norm inputs, " << full.kept << " with fp32");
  // The forward reads the exact inputs either way.
  CHECK(half.loss == full.loss);
  // The gradients are those at the inputs rounded to bf16 (2^-9 relative) in every GroupNorm,
  // propagated through the backward: the whole gradient within 1e-2 of the fp32-input one in norm
  // (measured 1.9e-3 to 3.4e-3 over seeds).
  CHECK(half.grads != full.grads);
  CHECK(rel_l2(half.grads, full.grads) < 1e-2);
  // Each Block's h is an activation of its own, kept by nothing else: half its bytes saved; a
  // PreNorm's input shares the bf16 copy its skip conv keeps, so its fp32 value is freed. At this
  // toy size (8 channels, where the time MLP and the statistics weigh more) that is 14% of what the
  // tape holds (measured 1,052,148 vs 1,224,180 bytes); at the CIFAR-10 preset, README.
  CHECK(half.kept < 0.92 * full.kept);
}
