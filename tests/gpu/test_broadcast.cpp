// The [B, C]-broadcast ops on the GPU vs the CPU backend, forward and backward,
// on odd shapes (channels and positions not multiples of the 32 x 8 reduction
// tile), rank 2 (one position), batch 1 and 1x1 spatial. Tolerances beside each check.
#include <catch2/catch.hpp>

#include "kernels/broadcast.h"
#include "tests/reference/broadcast.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
Tensor cuda(const Tensor& t) { return t.to(Device::CUDA); }
Tensor host(const Tensor& t) { return t.to(Device::CPU); }
}  // namespace

TEST_CASE("gpu: add_bc, mul_bc, scale_shift and their backwards match the cpu", "[gpu][broadcast]") {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{1, 1, 1, 1}, Shape{1, 1, 1, 7}, Shape{5, 12}, Shape{2, 3, 5, 6}, Shape{3, 7, 13, 33},
                      Shape{2, 5, 8}, Shape{1, 33, 31, 65}, Shape{16, 32, 32, 128}, Shape{128, 8, 8, 256}}) {
    SECTION(shape_str(shape)) {
      const int64_t n = shape_numel(shape), B = shape.front(), C = shape.back();
      Tensor x = from_double(shape, rng.normal(n)), dy = from_double(shape, rng.normal(n));
      Tensor v = from_double({B, C}, rng.normal(B * C)), w = from_double({B, C}, rng.normal(B * C));
      Tensor gx = cuda(x), gdy = cuda(dy), gv = cuda(v), gw = cuda(w);
      // One fp32 add or multiply: exact on both sides; scale_shift may fuse to an FMA: 1e-6.
      expect_close("add_bc", host(kernels::add_bc(gx, gv)), kernels::add_bc(x, v), 1e-6);
      expect_close("mul_bc", host(kernels::mul_bc(gx, gv)), kernels::mul_bc(x, v), 1e-6);
      // x (scale + 1) + shift may cancel (one element can land near 0): judged at the size of its terms.
      expect_close("scale_shift", host(kernels::scale_shift(gx, gv, gw)).to_vector(),
                   to_double(kernels::scale_shift(x, v, w)), 1e-6,
                   ref::scale_shift_terms(to_double(x), to_double(v), to_double(w), B, C));

      // Position sums in double rounded once, in a different order: 1e-5.
      expect_close("add_bc_backward", host(kernels::add_bc_backward(gdy)), kernels::add_bc_backward(dy), 1e-5);
      kernels::MulBcGrads mc = kernels::mul_bc_backward(x, v, dy), mg = kernels::mul_bc_backward(gx, gv, gdy);
      expect_close("mul_bc dx", host(mg.dx), mc.dx, 1e-6);
      expect_close("mul_bc dv", host(mg.dv), mc.dv, 1e-5);
      kernels::ScaleShiftGrads sc = kernels::scale_shift_backward(x, v, dy),
                               sg = kernels::scale_shift_backward(gx, gv, gdy);
      expect_close("scale_shift dx", host(sg.dx), sc.dx, 1e-6);
      expect_close("scale_shift dscale", host(sg.dscale), sc.dscale, 1e-5);
      expect_close("scale_shift dshift", host(sg.dshift), sc.dshift, 1e-5);
    }
  }
}

TEST_CASE("gpu: broadcast gradients are bitwise reproducible run to run", "[gpu][broadcast]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{4, 29, 31, 70};
  const int64_t n = shape_numel(shape);
  Tensor x = cuda(from_double(shape, rng.normal(n))), dy = cuda(from_double(shape, rng.normal(n)));
  Tensor v = cuda(from_double({4, 70}, rng.normal(280)));
  auto run = [&] {
    kernels::ScaleShiftGrads g = kernels::scale_shift_backward(x, v, dy);
    return std::vector<std::vector<float>>{host(g.dscale).to_vector(), host(g.dshift).to_vector(),
                                           host(kernels::add_bc_backward(dy)).to_vector()};
  };
  const auto first = run();
  CHECK(run() == first);
}
