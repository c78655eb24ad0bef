// kernels/cuda/elementwise.cu, activation.cu, adam.cu, loss.cu and
// multi_tensor.cu, run on the CPU through the host emulation, vs the CPU backend.
// Sizes straddle the 256-thread blocks, the two-pass reductions' partials and,
// for multi_tensor, the per-launch limits of kernels/cuda/multi_tensor_plan.h.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "kernels/cuda/multi_tensor_plan.h"
#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::copy;
using dd::emu_test::rnd;
using dd::emu_test::uni;

namespace {
const std::vector<Shape> kShapes = {{1}, {7}, {3, 5, 4, 2}, {257}, {2, 31, 33, 3}};
}

TEST_CASE("emu: elementwise ops and sums match the cpu", "[emu][elementwise]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : kShapes) {
    INFO(shape_str(s));
    Tensor a = rnd(rng, s), b = rnd(rng, s);
    // One fp32 operation per element: 1e-6 (as tests/gpu).
    expect_close("add", kernels::emu::add(a, b), kernels::cpu::add(a, b), 1e-6);
    expect_close("sub", kernels::emu::sub(a, b), kernels::cpu::sub(a, b), 1e-6);
    expect_close("mul", kernels::emu::mul(a, b), kernels::cpu::mul(a, b), 1e-6);
    // A multiply and an add, maybe fused on the CPU: judged at the terms' size (1), since a
    // one-element result may cancel.
    expect_close("affine", kernels::emu::affine(a, 0.7f, -1.5f), kernels::cpu::affine(a, 0.7f, -1.5f), 1e-6, 1.0);
    Tensor ye = copy(b), yc = copy(b);
    kernels::emu::axpy_(ye, -0.3f, a);
    kernels::cpu::axpy_(yc, -0.3f, a);
    expect_close("axpy_", ye, yc, 1e-6, 1.0);
    // scale_ from the same input on both sides (ye may be an ulp of the terms from yc, and one
    // element can cancel far below them): one multiply, 1e-6.
    ye = copy(yc);
    kernels::emu::scale_(ye, 1.7f);
    kernels::cpu::scale_(yc, 1.7f);
    expect_close("scale_", ye, yc, 1e-6);
    // Double sums in another order: 1e-9 relative (as tests/gpu).
    CHECK(kernels::emu::sum(a) == Approx(kernels::cpu::sum(a)).epsilon(1e-9).margin(1e-9));
    CHECK(kernels::emu::sum_squares(a) == Approx(kernels::cpu::sum_squares(a)).epsilon(1e-9));
  }
}

TEST_CASE("emu: activations match the cpu", "[emu][activation]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : kShapes) {
    INFO(shape_str(s));
    Tensor a = rnd(rng, s, 3.0), dy = rnd(rng, s);
    // A few libm calls per element: 1e-5 (as tests/gpu).
    expect_close("silu", kernels::emu::silu_forward(a), kernels::cpu::silu_forward(a), 1e-5);
    expect_close("silu_backward", kernels::emu::silu_backward(a, dy), kernels::cpu::silu_backward(a, dy), 1e-5);
    expect_close("gelu", kernels::emu::gelu_forward(a), kernels::cpu::gelu_forward(a), 1e-5);
    expect_close("gelu_backward", kernels::emu::gelu_backward(a, dy), kernels::cpu::gelu_backward(a, dy), 1e-5);
    // A comparison and a select: exact.
    expect_close("relu", kernels::emu::relu_forward(a), kernels::cpu::relu_forward(a), 0.0);
    expect_close("relu_backward", kernels::emu::relu_backward(a, dy), kernels::cpu::relu_backward(a, dy), 0.0);
  }
}

TEST_CASE("emu: adam update matches the cpu", "[emu][adam]") {
  DD_TEST_RANDOM(rng);
  const kernels::AdamStepScalars sc = kernels::adam_scalars({1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f}, 7);
  for (const Shape& s : kShapes) {
    INFO(shape_str(s));
    Tensor p = rnd(rng, s), g = rnd(rng, s), m = rnd(rng, s, 0.1), v = uni(rng, s, 0.0, 0.01);
    Tensor pe = copy(p), me = copy(m), ve = copy(v);
    kernels::emu::adam_update(pe, g, me, ve, sc);
    kernels::cpu::adam_update(p, g, m, v, sc);
    // The same fp32 expression: 1e-6 (as tests/gpu). m = 0.9 m + 0.1 g of a one-element tensor may
    // cancel far below its terms (see the multi-tensor test below): judged at 0.01.
    expect_close("param", pe, p, 1e-6);
    expect_close("m", me, m, 1e-6, 0.01);
    expect_close("v", ve, v, 1e-6);
  }
}

TEST_CASE("emu: loss forward and backward match the cpu", "[emu][loss]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : kShapes) {
    const int64_t n = shape_numel(s);
    std::vector<double> p = rng.normal_f32(n, 1.5), t = rng.normal_f32(n);
    for (int64_t i = 0; i < n; i += 5) p[i] = t[i];                    // d == 0
    for (int64_t i = 1; i < n; i += 7) p[i] = t[i] + (i % 2 ? 1 : -1);  // |d| == 1 (when exact in float)
    const Tensor pc = from_double(s, p), tc = from_double(s, t);
    for (kernels::LossType type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
      INFO(kernels::loss_type_name(type) << " shape " << shape_str(s));
      const Tensor le = kernels::emu::loss_forward(pc, tc, type);
      CHECK(le.shape() == Shape{});
      // Both sum in double (different order) and round once to float: 1e-6 (as tests/gpu).
      expect_close("forward", le, kernels::cpu::loss_forward(pc, tc, type), 1e-6);
      for (float dloss : {1.0f, 0.37f})  // the same float expressions: bitwise (as tests/gpu)
        expect_close("backward", kernels::emu::loss_backward(pc, tc, type, dloss),
                     kernels::cpu::loss_backward(pc, tc, type, dloss), 0.0);
    }
  }
}

TEST_CASE("emu: multi-tensor adam, ema, sum of squares and scale match the cpu", "[emu][multi_tensor]") {
  DD_TEST_RANDOM(rng);
  namespace plan = dd::kernels::cuda;
  // More tensors than one launch takes, sizes around the 512-thread block and the
  // chunk, and one tensor of more chunks than one launch takes.
  std::vector<Shape> shapes;
  for (int i = 0; i < plan::kMaxTensors + 5; ++i) shapes.push_back({1 + (i * 37) % 601});
  shapes.push_back({plan::kChunk + 1});
  shapes.push_back({int64_t(plan::kMaxBlocks + 2) * plan::kChunk - 3});
  shapes.push_back({3, 3, 7});
  auto make = [&](double scale) {
    std::vector<Tensor> out;
    for (const Shape& s : shapes) out.push_back(rnd(rng, s, scale));
    return out;
  };
  auto copies = [](const std::vector<Tensor>& ts) {
    std::vector<Tensor> out;
    for (const Tensor& t : ts) out.push_back(copy(t));
    return out;
  };
  std::vector<Tensor> p = make(1.0), g = make(1.0), m = make(0.1), v;
  for (const Shape& s : shapes) v.push_back(uni(rng, s, 0.0, 0.01));
  std::vector<Tensor> pe = copies(p), me = copies(m), ve = copies(v);
  const kernels::AdamStepScalars sc = kernels::adam_scalars({2e-4f, 0.9f, 0.99f, 1e-8f, 0.01f}, 3);
  std::vector<kernels::AdamSlot> cs, es;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    cs.push_back({p[i], g[i], m[i], v[i]});
    es.push_back({pe[i], g[i], me[i], ve[i]});
  }
  kernels::cpu::adam_update_multi(cs, sc);
  kernels::emu::adam_update_multi(es, sc);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    // The same fp32 expression: 1e-6 (as tests/gpu).
    expect_close("adam param " + std::to_string(i), pe[i], p[i], 1e-6);
    // m = 0.9 m + 0.1 g with m ~ 0.1 N(0,1), g ~ N(0,1): a one-element tensor may cancel far below its
    // terms (a DD_TEST_SEED in CI gave 4.2e-4 from terms of ~0.05, and one FMA's difference read as
    // 2.9e-6 of the result); errors are judged at the terms' size, 0.01 and up.
    expect_close("adam m " + std::to_string(i), me[i], m[i], 1e-6, 0.01);
    expect_close("adam v " + std::to_string(i), ve[i], v[i], 1e-6);
  }
  std::vector<Tensor> shadow = make(1.0), shadow_e = copies(shadow);
  kernels::cpu::ema_update_multi(shadow, p, 0.0001f);
  kernels::emu::ema_update_multi(shadow_e, pe, 0.0001f);
  for (std::size_t i = 0; i < shapes.size(); ++i) expect_close("ema " + std::to_string(i), shadow_e[i], shadow[i], 1e-6);
  // Double sums in another order: 1e-12 relative (as tests/gpu).
  CHECK(kernels::emu::sum_squares_multi(g) == Approx(kernels::cpu::sum_squares_multi(g)).epsilon(1e-12));
  std::vector<Tensor> ge = copies(g);
  kernels::cpu::scale_multi_(g, 0.37f);
  kernels::emu::scale_multi_(ge, 0.37f);
  for (std::size_t i = 0; i < shapes.size(); ++i) expect_close("scale " + std::to_string(i), ge[i], g[i], 0.0);
}

// The trainer's clip without a read-back: the factor and norm from the fold kernel, and Adam with
// the factor applied in-kernel (a separate rounded multiply), against the CPU backend.
TEST_CASE("emu: clip factor and adam with a grad scale match the cpu", "[emu][multi_tensor]") {
  DD_TEST_RANDOM(rng);
  namespace plan = dd::kernels::cuda;
  std::vector<Shape> shapes;
  for (int i = 0; i < plan::kMaxTensors + 3; ++i) shapes.push_back({1 + (i * 53) % 701});
  shapes.push_back({plan::kChunk + 7});
  std::vector<Tensor> p, g, m, v;
  for (const Shape& s : shapes) {
    p.push_back(rnd(rng, s, 1.0));
    g.push_back(rnd(rng, s, 1.0));
    m.push_back(rnd(rng, s, 0.1));
    v.push_back(uni(rng, s, 0.0, 0.01));
  }
  for (double max_norm : {0.5, 1e9}) {
    const Tensor fc = kernels::cpu::clip_coefficient_multi(g, max_norm, Device::CPU);
    const Tensor fe = kernels::emu::clip_coefficient_multi(g, max_norm, Device::CPU);
    // One double sum in another order, then the same double arithmetic rounded to float: within an
    // ulp or two of float.
    expect_close("clip factor", fe, fc, 1e-6);
    if (max_norm > 1e6) CHECK(fe.to_vector()[0] == 1.0f);
  }
  const std::vector<Tensor> none;
  CHECK(kernels::emu::clip_coefficient_multi(none, 1.0, Device::CPU).to_vector() == std::vector<float>{1.0f, 0.0f});

  const Tensor factor = Tensor::from_vector({2}, {0.3712f, 0.0f});
  std::vector<Tensor> pe, me, ve;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    pe.push_back(copy(p[i]));
    me.push_back(copy(m[i]));
    ve.push_back(copy(v[i]));
  }
  const kernels::AdamStepScalars sc = kernels::adam_scalars({2e-4f, 0.9f, 0.99f, 1e-8f, 0.01f}, 4);
  std::vector<kernels::AdamSlot> cs, es;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    cs.push_back({p[i], g[i], m[i], v[i]});
    es.push_back({pe[i], g[i], me[i], ve[i]});
  }
  const std::vector<Tensor> g_before = [&] {
    std::vector<Tensor> out;
    for (const Tensor& t : g) out.push_back(copy(t));
    return out;
  }();
  kernels::cpu::adam_update_multi_scaled(cs, sc, factor);
  kernels::emu::adam_update_multi_scaled(es, sc, factor);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    // The same fp32 expressions (as the unscaled update above): 1e-6.
    expect_close("scaled adam param " + std::to_string(i), pe[i], p[i], 1e-6);
    // m's one-element tensors cancel below their terms as in the unscaled test above: judged at 0.01.
    expect_close("scaled adam m " + std::to_string(i), me[i], m[i], 1e-6, 0.01);
    expect_close("scaled adam v " + std::to_string(i), ve[i], v[i], 1e-6);
    CHECK(g[i].to_vector() == g_before[i].to_vector());  // the gradients are left as they were
  }
}

// A list of one tensor (a flat arena, as ag::Adam, models::Ema and the clip pass) runs the flat
// kernels: one launch whatever the size, a grid-stride loop over at most kFlatMaxBlocks blocks.
// The second size needs more chunks than that grid has blocks, so the stride wraps.
TEST_CASE("emu: flat single-tensor adam, ema, sum of squares, scale and clip match the cpu", "[emu][multi_tensor]") {
  DD_TEST_RANDOM(rng);
  namespace plan = dd::kernels::cuda;
  for (int64_t n : {int64_t(3) * plan::kChunk + 5, int64_t(plan::kFlatMaxBlocks + 3) * plan::kChunk + 11}) {
    INFO("n = " << n);
    const Shape s{n};
    Tensor p = rnd(rng, s, 1.0), g = rnd(rng, s, 1.0), m = rnd(rng, s, 0.1), v = uni(rng, s, 0.0, 0.01);
    Tensor pe = copy(p), me = copy(m), ve = copy(v);
    const kernels::AdamStepScalars sc = kernels::adam_scalars({2e-4f, 0.9f, 0.99f, 1e-8f, 0.01f}, 5);
    kernels::cpu::adam_update_multi({{p, g, m, v}}, sc);
    kernels::emu::adam_update_multi({{pe, g, me, ve}}, sc);
    // The same fp32 expression: 1e-6 (as tests/gpu).
    expect_close("flat adam param", pe, p, 1e-6);
    expect_close("flat adam m", me, m, 1e-6);
    expect_close("flat adam v", ve, v, 1e-6);
    const Tensor factor = Tensor::from_vector({2}, {0.4219f, 0.0f});
    kernels::cpu::adam_update_multi_scaled({{p, g, m, v}}, sc, factor);
    kernels::emu::adam_update_multi_scaled({{pe, g, me, ve}}, sc, factor);
    expect_close("flat scaled adam param", pe, p, 1e-6);
    expect_close("flat scaled adam v", ve, v, 1e-6);

    Tensor shadow = rnd(rng, s, 1.0), shadow_e = copy(shadow);
    kernels::cpu::ema_update_multi({shadow}, {p}, 0.003f);
    kernels::emu::ema_update_multi({shadow_e}, {pe}, 0.003f);
    expect_close("flat ema", shadow_e, shadow, 1e-6);

    // Double sums in another order: 1e-12 relative (as tests/gpu); the clip within an ulp or two.
    CHECK(kernels::emu::sum_squares_multi({g}) == Approx(kernels::cpu::sum_squares_multi({g})).epsilon(1e-12));
    expect_close("flat clip factor", kernels::emu::clip_coefficient_multi({g}, 0.5, Device::CPU),
                 kernels::cpu::clip_coefficient_multi({g}, 0.5, Device::CPU), 1e-6);
    Tensor ge = copy(g);
    kernels::cpu::scale_multi_({g}, 0.37f);
    kernels::emu::scale_multi_({ge}, 0.37f);
    expect_close("flat scale", ge, g, 0.0);
  }
}
