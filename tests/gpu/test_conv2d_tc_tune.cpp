// --conv-autotune on the GPU (kernels/conv_autotune.h, kernels/cuda/conv2d_tc_tune.cu): under a
// BF16 / TF32 context a preset convolution times its options with CUDA events, runs the one chosen
// (bitwise what that option gives when forced, and still the convolution within the tensor-core
// bound), and answers the next call from the table without timing.
#include <catch2/catch.hpp>

#include <string>

#include "engine/context.h"
#include "kernels/conv2d.h"
#include "tests/support/compare.h"
#include "tests/support/conv_autotune_on.h"
#include "tests/support/conv_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::test::conv_tc::Dims;

namespace {

// The option and time of the key that starts with dir.
std::pair<std::string, double> chosen(const std::string& dir) {
  const auto e = kernels::conv_autotune_entry(dir);
  return e ? std::make_pair(e->option, e->ms) : std::make_pair(std::string(), 0.0);
}

Tensor random_tensor(Random& rng, const Shape& shape, double scale = 1.0) {
  return from_double(shape, rng.normal_f32(shape_numel(shape), scale));
}

}  // namespace

TEST_CASE("gpu: conv autotune times the options of a preset conv and runs the fastest", "[gpu][conv2d][tc][autotune]") {
  DD_TEST_RANDOM(rng);
  const Dims c{4, 32, 32, 64, 64, 3, 1};
  const Tensor x = random_tensor(rng, {c.b, c.h, c.w, c.ci}), w = random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  const Tensor dy = random_tensor(rng, {c.b, c.ho(), c.wo(), c.co});
  const Tensor gx = x.to(Device::CUDA), gw = w.to(Device::CUDA), gdy = dy.to(Device::CUDA);
  const conv_tc::AbsSums s = conv_tc::abs_sums(c, x, w, dy);
  const kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(x, w, dy, 1, true, true, false);
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    INFO(precision_name(prec));
    ConvAutotuneOn on;
    Context ctx;
    ctx.set_precision(prec);
    ContextScope scope(ctx);
    const Tensor y = kernels::conv2d_forward(gx, gw, Tensor(), 1);
    const kernels::Conv2dGrads g = kernels::conv2d_backward(gx, gw, gdy, 1, true, true, false);
    CHECK(kernels::conv_autotune_stats().tuned == 3);
    const auto [f, f_ms] = chosen("fwd");
    const auto [dx, dx_ms] = chosen("dx");
    const auto [dw, dw_ms] = chosen("dw");
    INFO("forward " << f << " " << f_ms << " ms, dx " << dx << " " << dx_ms << " ms, dw " << dw << " " << dw_ms << " ms");
    REQUIRE((!f.empty() && !dx.empty() && !dw.empty()));
    CHECK((f_ms > 0 && dx_ms > 0 && dw_ms > 0));  // timed by events, not loaded
    CHECK(conv_tc::bitwise_equal(
        y, kernels::cuda::conv2d_forward_tc(gx, gw, Tensor(), 1, prec, kernels::cuda::conv2d_tc_option_from_label(f, false))));
    CHECK(conv_tc::bitwise_equal(g.dx, kernels::cuda::conv2d_backward_tc(gx, gw, gdy, 1, true, false, false, prec,
                                                                         kernels::cuda::conv2d_tc_option_from_label(dx, false))
                                           .dx));
    CHECK(conv_tc::bitwise_equal(g.dw, kernels::cuda::conv2d_backward_tc(gx, gw, gdy, 1, false, true, false, prec,
                                                                         kernels::cuda::conv2d_tc_option_from_label(dw, true))
                                           .dw));
    conv_tc::expect_within_bound("tuned forward", y, kernels::cpu::conv2d_forward(x, w, Tensor(), 1), s.y,
                                 c.k * c.k * c.ci, prec, Tensor());
    conv_tc::expect_within_bound("tuned dx", g.dx, e.dx, s.dx, c.k * c.k * c.co, prec);
    conv_tc::expect_within_bound("tuned dw", g.dw, e.dw, s.dw, c.b * c.ho() * c.wo(), prec);
    const int64_t runs = kernels::conv_autotune_stats().timed_runs;
    CHECK(conv_tc::bitwise_equal(y, kernels::conv2d_forward(gx, gw, Tensor(), 1)));
    CHECK(conv_tc::bitwise_equal(g.dw, kernels::conv2d_backward(gx, gw, gdy, 1, false, true, false).dw));
    CHECK(kernels::conv_autotune_stats().timed_runs == runs);
  }
}
