// The fused GroupNorm -> scale/shift -> SiLU op on the GPU vs the CPU backend,
// forward and backward, with and without scale/shift, on odd shapes, batch 1,
// 1x1 spatial and U-Net-sized shapes. Tolerances beside each check.
#include <catch2/catch.hpp>

#include "kernels/group_norm_act.h"
#include "tests/gpu/norm_floor.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  Shape shape;
  int64_t groups;
};
Tensor cuda(const Tensor& t) { return t.defined() ? t.to(Device::CUDA) : Tensor(); }
Tensor host(const Tensor& t) { return t.to(Device::CPU); }
}  // namespace

TEST_CASE("gpu: group_norm_act forward and backward match the cpu", "[gpu][group_norm_act]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {{{1, 1, 1, 4}, 1},     {{1, 1, 1, 4}, 4},     {{2, 3, 5, 6}, 3},
                                   {{3, 7, 13, 16}, 8},   {{2, 5, 8}, 2},        {{5, 12}, 4},
                                   {{2, 9, 9, 13}, 13},   {{1, 33, 31, 65}, 5},  {{2, 32, 32, 64}, 8},
                                   {{1, 16, 16, 96}, 1},  {{128, 8, 8, 256}, 8}, {{4, 32, 32, 512}, 4},
                                   {{128, 32, 32, 32}, 4}};
  for (const Case& c : cases)
    for (bool ss : {false, true}) {
      SECTION(shape_str(c.shape) + " G=" + std::to_string(c.groups) + (ss ? " scale/shift" : "")) {
        const int64_t n = shape_numel(c.shape), B = c.shape.front(), C = c.shape.back();
        std::vector<double> xv = rng.normal(n, 2.0);
        for (double& v : xv) v -= 0.8;
        Tensor x = from_double(c.shape, xv), gamma = from_double({C}, rng.normal(C)),
               beta = from_double({C}, rng.normal(C, 0.5)), dy = from_double(c.shape, rng.normal(n));
        Tensor scale, shift;
        if (ss) {
          scale = from_double({B, C}, rng.normal(B * C, 0.5));
          shift = from_double({B, C}, rng.normal(B * C, 0.5));
        }
        kernels::GroupNormActOut fc = kernels::group_norm_act_forward(x, gamma, beta, scale, shift, c.groups);
        for (const bool per_group : {true, false}) {
          INFO((per_group ? "a block per group" : "two-pass"));
          const GnPerGroup path(per_group);
          kernels::GroupNormActOut fg = kernels::group_norm_act_forward(cuda(x), cuda(gamma), cuda(beta),
                                                                        cuda(scale), cuda(shift), c.groups);
          // Double sums rounded once, different order: 1e-6.
          expect_close("mean", host(fg.mean), fc.mean, 1e-6);
          expect_close("rstd", host(fg.rstd), fc.rstd, 1e-6);
          // Normalize, scale/shift (FMAs on the device) and expf: a few ulp: 1e-5.
          expect_close("y", host(fg.y), fc.y, 1e-5);
        }

        // The backward on x, and on x's bf16 copy (what a Block keeps under BF16), against the CPU
        // on the same operand.
        for (const bool fused : {true, false})
        for (const Tensor& xk : {x, x.to(DType::BF16)}) {
          INFO("x " << dtype_name(xk.dtype()) << (fused ? ", a block per group" : ", two-pass"));
          const GnPerGroup path(fused);
          kernels::GroupNormActGrads gc =
              kernels::group_norm_act_backward(xk, gamma, beta, scale, shift, fc.mean, fc.rstd, dy);
          kernels::GroupNormActGrads gg =
              kernels::group_norm_act_backward(cuda(xk), cuda(gamma), cuda(beta), cuda(scale), cuda(shift),
                                               cuda(fc.mean), cuda(fc.rstd), cuda(dy));
          // Reductions in double (different order) and GroupNorm's dx cancellation in fp32: 1e-4,
          // judged at the size of the cancelling terms (tests/gpu/norm_floor.h; a 1x1 image with one
          // channel per group makes them cancel exactly).
          expect_close("dx", host(gg.dx).to_vector(), to_double(gc.dx), 1e-4,
                       norm_dx_floor(gamma, fc.rstd, dy, scale));
          expect_close("dgamma", host(gg.dgamma), gc.dgamma, 1e-4);
          expect_close("dbeta", host(gg.dbeta), gc.dbeta, 1e-4);
          REQUIRE(gg.dscale.defined() == ss);
          REQUIRE(gg.dshift.defined() == ss);
          if (ss) {
            expect_close("dscale", host(gg.dscale), gc.dscale, 1e-4);
            expect_close("dshift", host(gg.dshift), gc.dshift, 1e-4);
          }
        }
      }
    }
}

TEST_CASE("gpu: group_norm_act is bitwise reproducible run to run", "[gpu][group_norm_act]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{3, 21, 19, 64};
  const int64_t n = shape_numel(shape);
  Tensor x = cuda(from_double(shape, rng.normal(n))), gamma = cuda(from_double({64}, rng.normal(64))),
         beta = cuda(from_double({64}, rng.normal(64))), dy = cuda(from_double(shape, rng.normal(n)));
  Tensor scale = cuda(from_double({3, 64}, rng.normal(192))), shift = cuda(from_double({3, 64}, rng.normal(192)));
  auto run = [&] {
    kernels::GroupNormActOut f = kernels::group_norm_act_forward(x, gamma, beta, scale, shift, 8);
    kernels::GroupNormActGrads g =
        kernels::group_norm_act_backward(x, gamma, beta, scale, shift, f.mean, f.rstd, dy);
    return std::vector<std::vector<float>>{host(f.y).to_vector(),      host(g.dx).to_vector(),
                                           host(g.dgamma).to_vector(), host(g.dbeta).to_vector(),
                                           host(g.dscale).to_vector(), host(g.dshift).to_vector()};
  };
  const auto first = run();
  CHECK(run() == first);  // no atomics: fixed reduction order
}
