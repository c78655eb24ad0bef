// GroupNorm on the GPU vs the CPU backend: odd channel counts, groups of one
// channel, positions and channels that are not multiples of the 32 x 8 reduction
// tile, 1x1 spatial, batch 1, and U-Net-sized shapes. Tolerances beside each check.
#include <catch2/catch.hpp>

#include "kernels/group_norm.h"
#include "tests/gpu/norm_floor.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  Shape shape;
  int64_t groups;
};
Tensor cuda(const Tensor& t) { return t.to(Device::CUDA); }
Tensor host(const Tensor& t) { return t.to(Device::CPU); }
}  // namespace

TEST_CASE("gpu: group_norm forward and backward match the cpu", "[gpu][group_norm]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {
      {{1, 1, 1, 4}, 1},      {{1, 1, 1, 4}, 4},     {{1, 1, 1, 3}, 1},    {{2, 3, 5, 6}, 3},
      {{3, 7, 13, 16}, 8},    {{2, 5, 8}, 2},        {{5, 12}, 1},         {{2, 9, 9, 13}, 13},
      {{2, 9, 9, 39}, 3},     {{1, 33, 31, 65}, 5},  {{2, 32, 32, 64}, 8}, {{1, 16, 16, 96}, 1},
      {{3, 5, 7, 1024}, 32},  {{128, 8, 8, 256}, 8}, {{4, 32, 32, 512}, 1}, {{128, 32, 32, 32}, 4}};
  for (const Case& c : cases) {
    SECTION(shape_str(c.shape) + " G=" + std::to_string(c.groups)) {
      const int64_t n = shape_numel(c.shape), C = c.shape.back();
      std::vector<double> xv = rng.normal(n, 2.0);
      for (double& v : xv) v += 1.5;  // |mean| comparable to the std
      Tensor x = from_double(c.shape, xv), gamma = from_double({C}, rng.normal(C)),
             beta = from_double({C}, rng.normal(C, 0.5)), dy = from_double(c.shape, rng.normal(n));
      kernels::GroupNormOut fc = kernels::group_norm_forward(x, gamma, beta, c.groups);
      for (const bool per_group : {true, false}) {
        INFO((per_group ? "a block per group" : "two-pass"));
        const GnPerGroup path(per_group);
        kernels::GroupNormOut fg = kernels::group_norm_forward(cuda(x), cuda(gamma), cuda(beta), c.groups);
        // Both accumulate in double and round once; only the order of the sums differs: 1e-6.
        expect_close("mean", host(fg.mean), fc.mean, 1e-6);
        expect_close("rstd", host(fg.rstd), fc.rstd, 1e-6);
        // (x - mean) * k + beta in fp32, contracted to an FMA on the device: 1e-5.
        expect_close("y", host(fg.y), fc.y, 1e-5);
        // y written in bf16 (the PreNorm under BF16): the fp32 y's bits rounded.
        kernels::GroupNormOut fb = kernels::group_norm_forward(cuda(x), cuda(gamma), cuda(beta), c.groups, 1e-5f, true);
        REQUIRE(fb.y.dtype() == DType::BF16);
        CHECK(host(fb.y).to_bytes() == host(fg.y).to(DType::BF16).to_bytes());
      }

      // The backward on x, and on x's bf16 copy (what the autograd op keeps under BF16), against
      // the CPU on the same operand.
      for (const bool fused : {true, false})
      for (const Tensor& xk : {x, x.to(DType::BF16)}) {
        INFO("x " << dtype_name(xk.dtype()) << (fused ? ", a block per group" : ", two-pass"));
        const GnPerGroup path(fused);
        kernels::GroupNormGrads gc = kernels::group_norm_backward(xk, gamma, fc.mean, fc.rstd, dy);
        kernels::GroupNormGrads gg =
            kernels::group_norm_backward(cuda(xk), cuda(gamma), cuda(fc.mean), cuda(fc.rstd), cuda(dy));
        // Reductions (double sums, different order) and dx's cancellation in fp32: 1e-4, judged at
        // the size of the cancelling terms (tests/gpu/norm_floor.h).
        expect_close("dx", host(gg.dx).to_vector(), to_double(gc.dx), 1e-4,
                     norm_dx_floor(gamma, fc.rstd, dy, Tensor()));
        expect_close("dgamma", host(gg.dgamma), gc.dgamma, 1e-4);
        expect_close("dbeta", host(gg.dbeta), gc.dbeta, 1e-4);
      }
    }
  }
}

TEST_CASE("gpu: group_norm is bitwise reproducible run to run", "[gpu][group_norm]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{6, 17, 19, 96};
  const int64_t n = shape_numel(shape);
  Tensor x = cuda(from_double(shape, rng.normal(n))), gamma = cuda(from_double({96}, rng.normal(96))),
         beta = cuda(from_double({96}, rng.normal(96))), dy = cuda(from_double(shape, rng.normal(n)));
  auto run = [&] {
    kernels::GroupNormOut f = kernels::group_norm_forward(x, gamma, beta, 4);
    kernels::GroupNormGrads g = kernels::group_norm_backward(x, gamma, f.mean, f.rstd, dy);
    return std::vector<std::vector<float>>{host(f.y).to_vector(),  host(f.rstd).to_vector(),
                                           host(g.dx).to_vector(), host(g.dgamma).to_vector(),
                                           host(g.dbeta).to_vector()};
  };
  const auto first = run();
  CHECK(run() == first);  // no atomics: fixed reduction order
}

TEST_CASE("gpu: GroupNorm(32, C, eps=1e-6) of UNet2DModel (ddpm-cifar10-32's shapes) matches the cpu",
          "[gpu][group_norm]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& shape : {Shape{4, 32, 32, 128}, Shape{4, 16, 16, 256}, Shape{2, 4, 4, 512}}) {
    const int64_t n = shape_numel(shape), C = shape.back();
    // A small spread, where eps matters: variance ~1e-6.
    Tensor x = from_double(shape, rng.normal(n, 1e-3)), gamma = from_double({C}, rng.normal(C)),
           beta = from_double({C}, rng.normal(C, 0.5)), dy = from_double(shape, rng.normal(n));
    kernels::GroupNormOut fc = kernels::group_norm_forward(x, gamma, beta, 32, 1e-6f);
    kernels::GroupNormOut fg = kernels::group_norm_forward(cuda(x), cuda(gamma), cuda(beta), 32, 1e-6f);
    expect_close("rstd " + shape_str(shape), host(fg.rstd), fc.rstd, 1e-6);
    expect_close("y " + shape_str(shape), host(fg.y), fc.y, 1e-5);
    kernels::GroupNormGrads gc = kernels::group_norm_backward(x, gamma, fc.mean, fc.rstd, dy);
    kernels::GroupNormGrads gg =
        kernels::group_norm_backward(cuda(x), cuda(gamma), cuda(fc.mean), cuda(fc.rstd), cuda(dy));
    expect_close("dx " + shape_str(shape), host(gg.dx).to_vector(), to_double(gc.dx), 1e-4,
                 norm_dx_floor(gamma, fc.rstd, dy, Tensor()));
    expect_close("dgamma " + shape_str(shape), host(gg.dgamma), gc.dgamma, 1e-4);
  }
}
