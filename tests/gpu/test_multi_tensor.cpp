// Multi-tensor updates on the GPU vs the CPU. The lists are built so that the
// CUDA side packs tensors across several launches: more tensors than one
// launch's table holds, and one tensor whose chunks straddle two launches.
#include <catch2/catch.hpp>

#include "kernels/adam.h"
#include "kernels/multi_tensor.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
std::vector<Shape> many_shapes() {
  std::vector<Shape> s;
  for (int i = 0; i < 53; ++i) s.push_back({1 + (i * 37) % 301});  // > 2 launches' worth of tensors
  s.push_back({5300003});  // > 320 chunks of 16384: straddles launches
  s.push_back({3, 3, 7});
  return s;
}
std::vector<Tensor> random_tensors(Random& rng, const std::vector<Shape>& shapes, double scale) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(from_double(s, rng.normal(shape_numel(s), scale)));
  return out;
}
std::vector<Tensor> on(const std::vector<Tensor>& ts, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.to(d));
  return out;
}
}  // namespace

TEST_CASE("gpu: multi-tensor adam, ema, sum of squares and scale match the cpu", "[gpu][multi_tensor]") {
  DD_TEST_RANDOM(rng);
  const auto shapes = many_shapes();
  auto p = random_tensors(rng, shapes, 1.0), g = random_tensors(rng, shapes, 1.0);
  auto m = random_tensors(rng, shapes, 0.1), v = random_tensors(rng, shapes, 0.1);
  for (Tensor& t : v) t = from_double(t.shape(), rng.uniform(t.numel(), 0.0, 0.01));
  auto gp = on(p, Device::CUDA), gg = on(g, Device::CUDA), gm = on(m, Device::CUDA), gv = on(v, Device::CUDA);
  const auto s = kernels::adam_scalars({2e-4f, 0.9f, 0.99f, 1e-8f, 0.01f}, 3);
  std::vector<kernels::AdamSlot> cs, gs;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    cs.push_back({p[i], g[i], m[i], v[i]});
    gs.push_back({gp[i], gg[i], gm[i], gv[i]});
  }
  kernels::adam_update_multi(cs, s);
  kernels::adam_update_multi(gs, s);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    // Same fp32 expression (device sqrtf and division are correctly rounded; nvcc may contract
    // a multiply-add): 1e-6.
    expect_close("adam param " + std::to_string(i), gp[i].to(Device::CPU), p[i], 1e-6);
    // m may cancel far below its terms (0.9 m, 0.1 g: 0.01 and up) in a one-element tensor: judged
    // at the terms' size (tests/emu/test_emu_elementwise.cpp).
    expect_close("adam m " + std::to_string(i), gm[i].to(Device::CPU), m[i], 1e-6, 0.01);
    expect_close("adam v " + std::to_string(i), gv[i].to(Device::CPU), v[i], 1e-6);
  }

  auto shadow = random_tensors(rng, shapes, 1.0);
  auto gshadow = on(shadow, Device::CUDA);
  kernels::ema_update_multi(shadow, p, 0.0001f);
  kernels::ema_update_multi(gshadow, gp, 0.0001f);
  for (std::size_t i = 0; i < shapes.size(); ++i)
    // One lerp in fp32 (a possible fused multiply-add on the device): 1e-6.
    expect_close("ema " + std::to_string(i), gshadow[i].to(Device::CPU), shadow[i], 1e-6);

  // Double accumulation on both sides in a different order: 1e-12 relative.
  const double want = kernels::sum_squares_multi(g);
  CHECK(kernels::sum_squares_multi(gg) == Approx(want).epsilon(1e-12));

  kernels::scale_multi_(g, 0.3f);
  kernels::scale_multi_(gg, 0.3f);
  for (std::size_t i = 0; i < shapes.size(); ++i)
    // One correctly rounded multiply: exact.
    expect_close("scale " + std::to_string(i), gg[i].to(Device::CPU), g[i], 0.0);
}
