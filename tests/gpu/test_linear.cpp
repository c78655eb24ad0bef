// GPU vs CPU for the cuBLAS linear layer: odd sizes, sizes below one tile, and
// more than one 256-row chunk for the bias gradient's two-pass sum.
#include <catch2/catch.hpp>

#include "kernels/linear.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }
Tensor cpu(const Tensor& t) { return t.to(Device::CPU); }
}  // namespace

TEST_CASE("gpu: linear forward and backward match the cpu", "[gpu][linear]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    int64_t m, k, n;
  };
  for (Case c : {Case{1, 1, 1}, Case{1, 7, 3}, Case{5, 13, 9}, Case{33, 65, 17}, Case{257, 31, 5},
                 Case{600, 128, 513}, Case{2, 1, 300}}) {
    INFO("M=" << c.m << " K=" << c.k << " N=" << c.n);
    const Tensor x = from_double({c.m, c.k}, rng.normal(c.m * c.k));
    const Tensor w = from_double({c.n, c.k}, rng.normal(c.n * c.k, 0.3));
    const Tensor b = from_double({c.n}, rng.normal(c.n));
    const Tensor dy = from_double({c.m, c.n}, rng.normal(c.m * c.n));

    // GEMMs: cuBLAS (pedantic fp32) and Eigen sum in different orders: 1e-4 of the terms' size
    // (the same GEMMs over |x|, |w|, |b|, |dy|), which M=K=N=1 plus a bias can cancel far below.
    const Tensor x_abs = abs_tensor(x), w_abs = abs_tensor(w), dy_abs = abs_tensor(dy);
    expect_close("y with bias", cpu(kernels::linear_forward(gpu(x), gpu(w), gpu(b))),
                 kernels::linear_forward(x, w, b), 1e-4,
                 max_element_of(kernels::linear_forward(x_abs, w_abs, abs_tensor(b))));
    const double y_size = max_element_of(kernels::linear_forward(x_abs, w_abs, Tensor()));
    expect_close("y without bias", cpu(kernels::linear_forward(gpu(x), gpu(w), Tensor())),
                 kernels::linear_forward(x, w, Tensor()), 1e-4, y_size);

    const kernels::LinearGrads gg = kernels::linear_backward(gpu(x), gpu(w), gpu(dy), true, true, true);
    const kernels::LinearGrads gc = kernels::linear_backward(x, w, dy, true, true, true);
    const kernels::LinearGrads size = kernels::linear_backward(x_abs, w_abs, dy_abs, true, true, false);
    expect_close("dx", cpu(gg.dx), gc.dx, 1e-4, max_element_of(size.dx));
    expect_close("dw", cpu(gg.dw), gc.dw, 1e-4, max_element_of(size.dw));
    // dbias: the CPU's 256-row chunks summed in double in the same order: bitwise (tolerance 0).
    expect_close("dbias", cpu(gg.dbias), gc.dbias, 0.0);

    const kernels::LinearGrads only_dw = kernels::linear_backward(gpu(x), gpu(w), gpu(dy), false, true, false);
    CHECK(!only_dw.dx.defined());
    CHECK(!only_dw.dbias.defined());
    expect_close("dw alone", cpu(only_dw.dw), gc.dw, 1e-4, max_element_of(size.dw));
  }
}
