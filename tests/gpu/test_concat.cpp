// GPU vs CPU for last-dim concat, split, chunk and chunk_backward. Pure copies:
// bitwise (tolerance 0).
#include <catch2/catch.hpp>

#include "kernels/concat.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}
}  // namespace

TEST_CASE("gpu: concat split and chunk_backward match the cpu", "[gpu][concat]") {
  DD_TEST_RANDOM(rng);
  for (Shape lead : {Shape{1}, Shape{5}, Shape{1, 1, 1, 1}, Shape{2, 3, 5, 1}, Shape{3, 17, 9, 1}}) {
    INFO("leading shape " << shape_str(lead));
    std::vector<Tensor> xs, gs;
    for (int64_t w : {7, 1, 4}) {
      const Shape s = with_last(lead, w);
      xs.push_back(from_double(s, rng.normal(shape_numel(s))));
      gs.push_back(xs.back().to(Device::CUDA));
    }
    const Tensor cat = kernels::concat(xs);
    expect_close("concat", kernels::concat(gs).to(Device::CPU), cat, 0.0);
    expect_close("concat of one", kernels::concat({gs[0]}).to(Device::CPU), xs[0], 0.0);

    const std::vector<int64_t> widths = {3, 0, 8, 1};  // a zero-width piece too
    const std::vector<Tensor> pc = kernels::split(cat, widths), pg = kernels::split(cat.to(Device::CUDA), widths);
    REQUIRE(pg.size() == widths.size());
    for (std::size_t i = 0; i < widths.size(); ++i) {
      REQUIRE(pg[i].shape() == pc[i].shape());
      if (widths[i] > 0) expect_close("split piece " + std::to_string(i), pg[i].to(Device::CPU), pc[i], 0.0);
    }

    const Shape xs3 = with_last(lead, 6);
    const Tensor x = from_double(xs3, rng.normal(shape_numel(xs3)));
    const std::vector<Tensor> cc = kernels::chunk(x, 3), cg = kernels::chunk(x.to(Device::CUDA), 3);
    for (std::size_t i = 0; i < 3; ++i) expect_close("chunk", cg[i].to(Device::CPU), cc[i], 0.0);
    // An undefined chunk gradient contributes zeros.
    const std::vector<Tensor> dc = {cc[2], Tensor(), cc[0]};
    const std::vector<Tensor> dg = {cg[2], Tensor(), cg[0]};
    expect_close("chunk_backward", kernels::chunk_backward(dg, xs3).to(Device::CPU),
                 kernels::chunk_backward(dc, xs3), 0.0);
  }
}
