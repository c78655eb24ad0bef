// GPU vs CPU for the kernels that have a CUDA side so far. Fresh random inputs
// of odd sizes; tolerances beside each check.
#include <catch2/catch.hpp>

#include "engine/rng.h"
#include "kernels/activation.h"
#include "kernels/elementwise.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: philox normals match the cpu stream", "[gpu][rng]") {
  for (int64_t n : {1, 3, 5, 4097, 100003}) {
    uint64_t seed = 0x1234567890abcdefULL + static_cast<uint64_t>(n), offset = 77;
    Tensor c = randn({n}, seed, offset, Device::CPU);
    Tensor g = randn({n}, seed, offset, Device::CUDA);
    // Same counters, Box-Muller in double rounded once: expect (near) bitwise equality.
    expect_close("randn n=" + std::to_string(n), g.to(Device::CPU), c, 1e-6);
  }
}

TEST_CASE("gpu: activations and elementwise ops match the cpu", "[gpu][activation][elementwise]") {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{1}, Shape{3, 7, 9, 5}, Shape{2, 33, 31, 65}}) {
    const int64_t n = shape_numel(shape);
    Tensor a = from_double(shape, rng.normal(n, 3.0));
    Tensor b = from_double(shape, rng.normal(n, 3.0));
    Tensor ga = a.to(Device::CUDA), gb = b.to(Device::CUDA);
    // Pointwise fp32 (expf/erff may differ by an ulp between host and device): 1e-5.
    expect_close("silu", kernels::silu_forward(ga).to(Device::CPU), kernels::silu_forward(a), 1e-5);
    expect_close("silu_backward", kernels::silu_backward(ga, gb).to(Device::CPU), kernels::silu_backward(a, b), 1e-5);
    expect_close("gelu", kernels::gelu_forward(ga).to(Device::CPU), kernels::gelu_forward(a), 1e-5);
    expect_close("gelu_backward", kernels::gelu_backward(ga, gb).to(Device::CPU), kernels::gelu_backward(a, b), 1e-5);
    expect_close("add", kernels::add(ga, gb).to(Device::CPU), kernels::add(a, b), 1e-6);
    expect_close("sub", kernels::sub(ga, gb).to(Device::CPU), kernels::sub(a, b), 1e-6);
    expect_close("mul", kernels::mul(ga, gb).to(Device::CPU), kernels::mul(a, b), 1e-6);
    expect_close("affine", kernels::affine(ga, 0.7f, -1.5f).to(Device::CPU), kernels::affine(a, 0.7f, -1.5f), 1e-6);
    Tensor ya = a.clone(), yg = ga.clone();
    kernels::axpy_(ya, 0.25f, b);
    kernels::axpy_(yg, 0.25f, gb);
    expect_close("axpy_", yg.to(Device::CPU), ya, 1e-6);
    // Double accumulation on both sides, different order: 1e-9 relative.
    CHECK(kernels::sum(ga) == Approx(kernels::sum(a)).epsilon(1e-9).margin(1e-9));
    CHECK(kernels::sum_squares(ga) == Approx(kernels::sum_squares(a)).epsilon(1e-9));
  }
}
