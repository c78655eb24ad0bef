// kernels/cuda/diffusion.cu, upsample.cu, pixel_unshuffle.cu, concat.cu,
// time_embedding.cu, timesteps.cu and engine/cuda/rng.cu, run on the CPU through the host
// emulation, vs the CPU backend.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
using dd::emu_test::uni;

TEST_CASE("emu: diffusion steps match the cpu", "[emu][diffusion]") {
  DD_TEST_RANDOM(rng);
  // n = 1, odd n (the philox kernels' partial last group of four), B = 1.
  for (Shape shape : {Shape{1, 1, 1, 1}, Shape{3, 5, 3, 1}, Shape{2, 7}, Shape{4, 9, 11, 3}}) {
    const int64_t B = shape[0];
    INFO("shape " << shape_str(shape));
    const Tensor x = rnd(rng, shape), e = rnd(rng, shape), z = rnd(rng, shape);
    const Tensor a = uni(rng, {B}, 0.05, 1.0), b = uni(rng, {B}, 0.0, 1.0);
    kernels::PSampleCoefs c{uni(rng, {B}, 1.0, 1.1), uni(rng, {B}, 1e-4, 0.02), uni(rng, {B}, 0.01, 1.0),
                            uni(rng, {B}, 0.0, 0.2)};
    c.sigma.data()[0] = 0.0f;  // t == 0: no noise
    // A few fp32 operations on O(1) values (the CPU build may fuse a multiply-add, the emulation does
    // not): 1e-5 of the terms' size, 1, since one element may cancel far below it.
    expect_close("q_sample", kernels::emu::q_sample(x, z, a, b), kernels::cpu::q_sample(x, z, a, b), 1e-5, 1.0);
    expect_close("p_sample_step", kernels::emu::p_sample_step(x, e, z, c), kernels::cpu::p_sample_step(x, e, z, c),
                 1e-5, 1.0);
    expect_close("p_sample_step mean", kernels::emu::p_sample_step(x, e, Tensor(), c),
                 kernels::cpu::p_sample_step(x, e, Tensor(), c), 1e-5, 1.0);
    const Tensor r1 = uni(rng, {B}, 1.0, 150.0), rm = uni(rng, {B}, 0.0, 150.0);
    const Tensor unclamped = kernels::cpu::predict_x0(x, e, r1, rm, false);
    expect_close("predict_x0", kernels::emu::predict_x0(x, e, r1, rm, false), unclamped, 1e-5, 150.0);
    double scale = 1.0;
    for (float v : unclamped.to_vector()) scale = std::max(scale, std::fabs(double(v)));
    // Clamped values are O(1) from terms of the unclamped scale: 1e-5 of it (as tests/gpu).
    const CloseReport rc = compare(kernels::emu::predict_x0(x, e, r1, rm, true).to_vector(),
                                   kernels::cpu::predict_x0(x, e, r1, rm, true).to_vector(), 1e-5 * scale);
    INFO("predict_x0 clamped: " << rc.message);
    CHECK(rc.ok);
    for (uint64_t offset : {uint64_t{0}, uint64_t{12345}, (uint64_t{1} << 32) - 1}) {
      INFO("offset " << offset);
      const uint64_t seed = rng.engine()();
      const kernels::QSampleOut qe = kernels::emu::q_sample_philox(x, a, b, seed, offset);
      const kernels::QSampleOut qc = kernels::cpu::q_sample_philox(x, a, b, seed, offset);
      // The same counters, Box-Muller in double rounded once: 1e-6 (as tests/gpu).
      expect_close("q_sample_philox noise", qe.noise, qc.noise, 1e-6);
      expect_close("q_sample_philox x_t", qe.x_t, qc.x_t, 1e-5, 1.0);
      expect_close("p_sample_step_philox", kernels::emu::p_sample_step_philox(x, e, c, seed, offset),
                   kernels::cpu::p_sample_step_philox(x, e, c, seed, offset), 1e-5, 1.0);
    }
  }
}

TEST_CASE("emu: randn (engine/cuda/rng.cu) matches the cpu stream", "[emu][rng]") {
  DD_TEST_RANDOM(rng);
  for (int64_t n : {1, 3, 4, 5, 1023, 1029}) {
    const uint64_t seed = rng.engine()(), offset = rng.engine()() >> 20;
    Tensor e = Tensor::empty({n});
    emu_rng::randn_fill(e.data(), n, seed, offset);
    // Box-Muller in double rounded once on both: 1e-6 (as tests/gpu).
    expect_close("randn n=" + std::to_string(n), e, randn({n}, seed, offset, Device::CPU), 1e-6);
  }
}

TEST_CASE("emu: upsample and pixel unshuffle match the cpu", "[emu][upsample][pixel_unshuffle]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{1, 1, 3, 2}, Shape{3, 4, 1, 5}}) {
    INFO(shape_str(s));
    Tensor x = rnd(rng, s), dy = rnd(rng, {s[0], 2 * s[1], 2 * s[2], s[3]});
    // Copies: exact; the backward sums four terms: 1e-6.
    expect_close("upsample", kernels::emu::upsample2x_forward(x), kernels::cpu::upsample2x_forward(x), 0.0);
    expect_close("upsample backward", kernels::emu::upsample2x_backward(dy), kernels::cpu::upsample2x_backward(dy),
                 1e-6);
  }
  for (Shape s : {Shape{1, 2, 2, 1}, Shape{2, 6, 4, 3}, Shape{1, 2, 6, 3}, Shape{3, 4, 2, 5}}) {
    INFO(shape_str(s));
    Tensor x = rnd(rng, s), dy = rnd(rng, {s[0], s[1] / 2, s[2] / 2, 4 * s[3]});
    // Permutations: exact.
    expect_close("pixel_unshuffle", kernels::emu::pixel_unshuffle_forward(x), kernels::cpu::pixel_unshuffle_forward(x),
                 0.0);
    expect_close("pixel_unshuffle backward", kernels::emu::pixel_unshuffle_backward(dy),
                 kernels::cpu::pixel_unshuffle_backward(dy), 0.0);
  }
}

TEST_CASE("emu: concat, split and chunk_backward match the cpu", "[emu][concat]") {
  DD_TEST_RANDOM(rng);
  auto with_last = [](Shape s, int64_t last) {
    s.back() = last;
    return s;
  };
  for (Shape lead : {Shape{1}, Shape{5}, Shape{1, 1, 1, 1}, Shape{2, 3, 5, 1}}) {
    INFO(shape_str(lead));
    std::vector<Tensor> xs;
    for (int64_t w : {3, 1, 8}) xs.push_back(rnd(rng, with_last(lead, w)));
    // Copies: exact.
    expect_close("concat", kernels::emu::concat(xs), kernels::cpu::concat(xs), 0.0);
    expect_close("concat of one", kernels::emu::concat({xs[0]}), kernels::cpu::concat({xs[0]}), 0.0);
    std::vector<Tensor> xb;  // bf16 parts (conv inputs the tape keeps in bf16): their bits moved as they are
    for (const Tensor& x : xs) xb.push_back(x.to(DType::BF16));
    const Tensor cb = kernels::emu::concat(xb);
    CHECK(cb.dtype() == DType::BF16);
    expect_close("concat bf16", cb.to(DType::F32), kernels::cpu::concat(xb).to(DType::F32), 0.0);
    const Tensor x = rnd(rng, with_last(lead, 12));
    const std::vector<int64_t> widths = {3, 0, 8, 1};  // a zero-width piece too
    std::vector<Tensor> pe = kernels::emu::split(x, widths), pc = kernels::cpu::split(x, widths);
    REQUIRE(pe.size() == pc.size());
    for (std::size_t i = 0; i < pe.size(); ++i)
      if (widths[i] > 0) expect_close("split piece " + std::to_string(i), pe[i], pc[i], 0.0);
    const Shape xs3 = with_last(lead, 6);
    std::vector<Tensor> dys;
    for (int i = 0; i < 3; ++i) dys.push_back(rnd(rng, with_last(lead, 2)));
    expect_close("chunk_backward", kernels::emu::chunk_backward(dys, xs3), kernels::cpu::chunk_backward(dys, xs3), 0.0);
  }
}

TEST_CASE("emu: time embedding matches the cpu", "[emu][time_embedding]") {
  DD_TEST_RANDOM(rng);
  for (int64_t B : {1, 3}) {
    for (int64_t dim : {4, 6, 130, 514}) {  // 514: more pairs than the 128-thread backward block
      INFO("B=" << B << " dim=" << dim);
      std::vector<double> tv = rng.uniform(B, 0.0, 1000.0);
      for (std::size_t i = 0; i < tv.size(); i += 2) tv[i] = std::floor(tv[i]);  // integer steps too
      const Tensor t = from_double({B}, tv), dy = rnd(rng, {B, dim});
      // Outputs in [-1, 1], a few ulp of sin/cos: 1e-5; backward, a double sum over dim/2: 1e-4 (as tests/gpu).
      expect_close("forward", kernels::emu::time_embedding_forward(t, dim), kernels::cpu::time_embedding_forward(t, dim),
                   1e-5);
      expect_close("backward", kernels::emu::time_embedding_backward(t, dy), kernels::cpu::time_embedding_backward(t, dy),
                   1e-4);
    }
  }
}

TEST_CASE("emu: timestep draw and gather (kernels/cuda/timesteps.cu) match the cpu", "[emu][timesteps]") {
  for (int64_t T : {1, 13, 1000}) {
    for (int64_t B : {1, 5, 300}) {  // more than one block of 256 threads
      const uint64_t seed = 0xabcdef12345ULL + static_cast<uint64_t>(T * B), offset = 77 + static_cast<uint64_t>(B);
      const Tensor tc = kernels::cpu::draw_timesteps(B, T, seed, offset, Device::CPU);
      const Tensor te = kernels::emu::draw_timesteps(B, T, seed, offset, Device::CPU);
      CHECK(te.to_vector() == tc.to_vector());  // integer arithmetic: bitwise
      std::vector<float> tab(static_cast<std::size_t>(T));
      for (int64_t i = 0; i < T; ++i) tab[static_cast<std::size_t>(i)] = 0.5f + static_cast<float>(i) * 1.25f;
      const Tensor table = Tensor::from_vector({T}, tab);
      CHECK(kernels::emu::gather_timesteps(table, te).to_vector() == kernels::cpu::gather_timesteps(table, tc).to_vector());
    }
  }
}
