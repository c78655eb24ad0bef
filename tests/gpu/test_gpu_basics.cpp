// GPU vs CPU for the kernels that have a CUDA side so far. Fresh random inputs
// of odd sizes; tolerances beside each check.
#include <catch2/catch.hpp>

#include "engine/rng.h"
#include "kernels/activation.h"
#include "kernels/adam.h"
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
    // A comparison and a select: exact.
    expect_close("relu", kernels::relu_forward(ga).to(Device::CPU), kernels::relu_forward(a), 0.0);
    expect_close("relu_backward", kernels::relu_backward(ga, gb).to(Device::CPU), kernels::relu_backward(a, b), 0.0);
    expect_close("add", kernels::add(ga, gb).to(Device::CPU), kernels::add(a, b), 1e-6);
    expect_close("sub", kernels::sub(ga, gb).to(Device::CPU), kernels::sub(a, b), 1e-6);
    expect_close("mul", kernels::mul(ga, gb).to(Device::CPU), kernels::mul(a, b), 1e-6);
    // A multiply and an add, fused to an FMA on the device: judged at the terms' size (3, the inputs'
    // scale), since a one-element result may cancel.
    expect_close("affine", kernels::affine(ga, 0.7f, -1.5f).to(Device::CPU), kernels::affine(a, 0.7f, -1.5f), 1e-6,
                 3.0);
    Tensor ya = a.clone(), yg = ga.clone();
    kernels::axpy_(ya, 0.25f, b);
    kernels::axpy_(yg, 0.25f, gb);
    expect_close("axpy_", yg.to(Device::CPU), ya, 1e-6, 3.0);
    // Double accumulation on both sides, different order: 1e-9 relative.
    CHECK(kernels::sum(ga) == Approx(kernels::sum(a)).epsilon(1e-9).margin(1e-9));
    CHECK(kernels::sum_squares(ga) == Approx(kernels::sum_squares(a)).epsilon(1e-9));
  }
}

TEST_CASE("gpu: adam update matches the cpu", "[gpu][adam]") {
  DD_TEST_RANDOM(rng);
  const int64_t n = 100003;  // not a multiple of any block size
  Tensor p = from_double({n}, rng.normal(n)), g = from_double({n}, rng.normal(n));
  Tensor m = from_double({n}, rng.normal(n, 0.1)), v = from_double({n}, rng.uniform(n, 0.0, 0.5));
  Tensor gp = p.to(Device::CUDA), gg = g.to(Device::CUDA), gm = m.to(Device::CUDA), gv = v.to(Device::CUDA);
  kernels::AdamStepScalars s = kernels::adam_scalars({1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f}, 7);
  kernels::adam_update(p, g, m, v, s);
  kernels::adam_update(gp, gg, gm, gv, s);
  // Same fp32 expression; sqrtf and division are correctly rounded on both: 1e-6.
  expect_close("adam param", gp.to(Device::CPU), p, 1e-6);
  expect_close("adam m", gm.to(Device::CPU), m, 1e-6);
  expect_close("adam v", gv.to(Device::CPU), v, 1e-6);
}

TEST_CASE("gpu: an op given a cpu and a cuda tensor names both", "[gpu][dispatch]") {
  Tensor a = Tensor::full({2, 3}, 1.0f, Device::CPU);
  Tensor b = Tensor::full({2, 3}, 2.0f, Device::CUDA);
  CHECK_THROWS_WITH(kernels::add(a, b),
                    Catch::Contains("inputs are on different devices: [2,3] cpu, [2,3] cuda"));
}
