// The fused GroupNorm -> scale/shift -> SiLU op on the CPU: against the float64
// reference, a float64 gradcheck, equality with the unfused chain of three ops,
// thread-count determinism, and the U-Net's fused and unfused paths agreeing.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "autograd/elementwise.h"
#include "autograd/group_norm_act.h"
#include "engine/rng.h"
#include "kernels/activation.h"
#include "kernels/broadcast.h"
#include "kernels/cuda/channel_plan.h"
#include "kernels/group_norm.h"
#include "kernels/group_norm_act.h"
#include "models/unet.h"
#include "tests/reference/group_norm_act.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  Shape shape;
  int64_t groups;
  bool scale_shift;
};

struct Inputs {
  Tensor x, gamma, beta, scale, shift;  // scale/shift undefined without scale_shift
  std::vector<double> xd, gd, bd, sd, hd;
  int64_t B, S, C;
};

// Values are rounded to float before the reference sees them, so both paths
// start from identical inputs. The offset makes the mean non-trivial.
Inputs make_inputs(Random& rng, const Case& c, double offset) {
  Inputs in;
  in.C = c.shape.back();
  in.B = c.shape.front();
  in.S = shape_numel(c.shape) / (in.B * in.C);
  std::vector<double> x = rng.normal(shape_numel(c.shape), 2.0);
  for (double& v : x) v += offset;
  in.x = from_double(c.shape, x);
  in.gamma = from_double({in.C}, rng.normal(in.C, 1.0));
  in.beta = from_double({in.C}, rng.normal(in.C, 0.5));
  if (c.scale_shift) {
    in.scale = from_double({in.B, in.C}, rng.normal(in.B * in.C, 0.5));
    in.shift = from_double({in.B, in.C}, rng.normal(in.B * in.C, 0.5));
    in.sd = to_double(in.scale);
    in.hd = to_double(in.shift);
  }
  in.xd = to_double(in.x);
  in.gd = to_double(in.gamma);
  in.bd = to_double(in.beta);
  return in;
}

std::string case_name(const Case& c) {
  return shape_str(c.shape) + " G=" + std::to_string(c.groups) + (c.scale_shift ? " scale/shift" : "");
}

std::vector<double> ref_forward(const Inputs& in, int64_t groups) {
  return ref::group_norm_act(in.xd, in.gd, in.bd, in.sd, in.hd, in.B, in.S, in.C, groups);
}
}  // namespace

TEST_CASE("group_norm_act forward matches float64 on odd shapes", "[group_norm_act]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {
      {{1, 1, 1, 4}, 1, false}, {{1, 1, 1, 4}, 4, true},  {{2, 3, 5, 6}, 3, true},    {{3, 7, 13, 16}, 8, false},
      {{2, 5, 8}, 2, true},     {{4, 6}, 2, true},        {{2, 9, 9, 13}, 13, true},  {{2, 32, 32, 64}, 8, true},
      {{1, 16, 16, 96}, 1, false}, {{3, 5, 7, 40}, 4, true}};
  for (const Case& c : cases) {
    SECTION("forward " + case_name(c)) {
      Inputs in = make_inputs(rng, c, 1.5);
      kernels::GroupNormActOut out =
          kernels::group_norm_act_forward(in.x, in.gamma, in.beta, in.scale, in.shift, c.groups);
      ref::GroupNormStats st = ref::group_norm_stats(in.xd, in.B, in.S, in.C, c.groups, 1e-5);
      REQUIRE(out.mean.shape() == Shape{in.B, c.groups});
      REQUIRE(out.rstd.shape() == Shape{in.B, c.groups});
      // Statistics accumulate in double and are rounded to float once: 1e-6.
      expect_close("mean", out.mean, st.mean, 1e-6);
      expect_close("rstd", out.rstd, st.rstd, 1e-6);
      // Three fp32 steps (normalize, scale/shift, expf in SiLU), a few ulp of |y|: 1e-5.
      expect_close("y", out.y, ref_forward(in, c.groups), 1e-5);
    }
  }
}

TEST_CASE("group_norm_act backward: float64 gradcheck of x, gamma, beta, scale and shift", "[group_norm_act]") {
  DD_TEST_RANDOM(rng);
  // Every group holds >= 3 elements (with fewer the normalized value is constant up to eps).
  const std::vector<Case> cases = {{{1, 1, 1, 4}, 1, true}, {{1, 1, 2, 4}, 2, false}, {{2, 3, 5, 6}, 3, true},
                                   {{2, 3, 1, 4}, 4, true}, {{2, 5, 8}, 2, false},    {{3, 6}, 2, true},
                                   {{1, 2, 3, 5}, 5, true}};
  for (const Case& c : cases) {
    SECTION("gradcheck " + case_name(c)) {
      // A group of nearly equal values is redrawn (fp32 normalization is ill-conditioned there).
      Inputs in = ref::draw_well_conditioned([&] { return make_inputs(rng, c, -0.7); }, c.groups);
      kernels::GroupNormActOut out =
          kernels::group_norm_act_forward(in.x, in.gamma, in.beta, in.scale, in.shift, c.groups);
      std::vector<double> dy = rng.normal_f32(in.x.numel());
      kernels::GroupNormActGrads g = kernels::group_norm_act_backward(in.x, in.gamma, in.beta, in.scale, in.shift,
                                                                      out.mean, out.rstd, from_double(c.shape, dy));
      REQUIRE(g.dgamma.shape() == Shape{in.C});
      REQUIRE(g.dbeta.shape() == Shape{in.C});
      REQUIRE(g.dscale.defined() == c.scale_shift);
      REQUIRE(g.dshift.defined() == c.scale_shift);
      std::vector<std::vector<float>> analytic{g.dx.to_vector(), g.dgamma.to_vector(), g.dbeta.to_vector()};
      std::vector<std::vector<double>> inputs{in.xd, in.gd, in.bd};
      if (c.scale_shift) {
        REQUIRE(g.dscale.shape() == Shape{in.B, in.C});
        REQUIRE(g.dshift.shape() == Shape{in.B, in.C});
        analytic.push_back(g.dscale.to_vector());
        analytic.push_back(g.dshift.to_vector());
        inputs.push_back(in.sd);
        inputs.push_back(in.hd);
      }
      auto f = [&](const std::vector<std::vector<double>>& v) {
        static const std::vector<double> none;
        return ref::group_norm_act(v[0], v[1], v[2], c.scale_shift ? v[3] : none, c.scale_shift ? v[4] : none,
                                   in.B, in.S, in.C, c.groups);
      };
      // fp32 backward with double-accumulated sums; dx carries GroupNorm's
      // cancellation (dxhat - mean(dxhat) - xhat mean(dxhat xhat)): 1e-5 of the largest gradient.
      gradcheck("group_norm_act " + case_name(c), f, inputs, dy, analytic, 1e-5);
    }
  }
}

TEST_CASE("group_norm_act equals the unfused group_norm -> scale_shift -> silu chain", "[group_norm_act]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {{{2, 32, 32, 64}, 8, true}, {{3, 7, 9, 12}, 4, true}, {{1, 16, 16, 96}, 1, false},
                                   {{2, 5, 6, 13}, 13, false}, {{1, 1, 1, 8}, 2, true},   {{4, 3, 3, 30}, 3, true}};
  for (const Case& c : cases) {
    SECTION("fused vs unfused " + case_name(c)) {
      Inputs in = make_inputs(rng, c, 0.8);
      Tensor dy = from_double(c.shape, rng.normal_f32(in.x.numel()));
      kernels::GroupNormActOut f =
          kernels::group_norm_act_forward(in.x, in.gamma, in.beta, in.scale, in.shift, c.groups);
      kernels::GroupNormActGrads g =
          kernels::group_norm_act_backward(in.x, in.gamma, in.beta, in.scale, in.shift, f.mean, f.rstd, dy);

      kernels::GroupNormOut n = kernels::group_norm_forward(in.x, in.gamma, in.beta, c.groups);
      Tensor u = c.scale_shift ? kernels::scale_shift(n.y, in.scale, in.shift) : n.y;
      Tensor y = kernels::silu_forward(u);
      Tensor du = kernels::silu_backward(u, dy);
      Tensor dh = du;
      kernels::ScaleShiftGrads ssg;
      if (c.scale_shift) {
        ssg = kernels::scale_shift_backward(n.y, in.scale, du);
        dh = ssg.dx;
      }
      kernels::GroupNormGrads ng = kernels::group_norm_backward(in.x, in.gamma, n.mean, n.rstd, dh);

      // Same statistics chunking and the same float expressions in the same
      // order: the forward is bitwise the unfused one.
      CHECK(f.mean.to_vector() == n.mean.to_vector());
      CHECK(f.rstd.to_vector() == n.rstd.to_vector());
      CHECK(f.y.to_vector() == y.to_vector());
      // The backward recomputes h with the float-rounded rstd (the unfused
      // chain keeps the forward's h, made with the double rstd): h may differ by
      // an ulp, and the position sums are chunked differently (observed <= 2e-7): 2e-6.
      expect_close("dx", g.dx, ng.dx, 2e-6);
      expect_close("dgamma", g.dgamma, ng.dgamma, 2e-6);
      expect_close("dbeta", g.dbeta, ng.dbeta, 2e-6);
      if (c.scale_shift) {
        expect_close("dscale", g.dscale, ssg.dscale, 2e-6);
        expect_close("dshift", g.dshift, ssg.dshift, 2e-6);
      }
    }
  }
}

TEST_CASE("group_norm_act is bitwise independent of the thread count", "[group_norm_act]") {
  DD_TEST_RANDOM(rng);
  Inputs in = make_inputs(rng, {{2, 24, 24, 64}, 8, true}, 0.5);
  Tensor dy = from_double(in.x.shape(), rng.normal_f32(in.x.numel()));
  auto run = [&] {
    kernels::GroupNormActOut f = kernels::group_norm_act_forward(in.x, in.gamma, in.beta, in.scale, in.shift, 8);
    kernels::GroupNormActGrads g =
        kernels::group_norm_act_backward(in.x, in.gamma, in.beta, in.scale, in.shift, f.mean, f.rstd, dy);
    return std::vector<std::vector<float>>{f.y.to_vector(),      f.mean.to_vector(),   f.rstd.to_vector(),
                                           g.dx.to_vector(),     g.dgamma.to_vector(), g.dbeta.to_vector(),
                                           g.dscale.to_vector(), g.dshift.to_vector()};
  };
  const int threads = omp_get_max_threads();
  const auto reference = run();
  for (int t : {1, 3}) {
    omp_set_num_threads(t);
    const bool same = run() == reference;
    omp_set_num_threads(threads);
    INFO("threads " << t);
    CHECK(same);
  }
}

TEST_CASE("group_norm_act errors name the op and the shapes", "[group_norm_act]") {
  Tensor x = Tensor::zeros({2, 4, 4, 8}), g8 = Tensor::zeros({8}), s = Tensor::zeros({2, 8});
  REQUIRE_THROWS_WITH(kernels::group_norm_act_forward(x, g8, g8, s, Tensor(), 2),
                      Catch::Contains("group_norm_act") && Catch::Contains("both"));
  REQUIRE_THROWS_WITH(kernels::group_norm_act_forward(x, g8, g8, Tensor::zeros({2, 7}), s, 2),
                      Catch::Contains("scale [2,7]") && Catch::Contains("[2,4,4,8]"));
  REQUIRE_THROWS_WITH(kernels::group_norm_act_forward(x, g8, g8, s, s, 3),
                      Catch::Contains("groups = 3") && Catch::Contains("C = 8"));
  REQUIRE_THROWS_WITH(kernels::group_norm_act_forward(x, g8, Tensor::zeros({7}), s, s, 2),
                      Catch::Contains("beta [7]"));
  kernels::GroupNormActOut f = kernels::group_norm_act_forward(x, g8, g8, s, s, 2);
  REQUIRE_THROWS_WITH(kernels::group_norm_act_backward(x, g8, g8, s, s, f.mean, f.rstd, Tensor::zeros({2, 4, 8, 4})),
                      Catch::Contains("group_norm_act_backward") && Catch::Contains("[2,4,8,4]"));
  REQUIRE_THROWS_WITH(kernels::group_norm_act_backward(x, g8, g8, s, s, f.mean, Tensor::zeros({2, 4}), x),
                      Catch::Contains("group_norm_act_backward") && Catch::Contains("rstd [2,4]"));
}

TEST_CASE("group_norm_act autograd: grads equal the kernel backward, scale/shift optional", "[group_norm_act]") {
  DD_TEST_RANDOM(rng);
  struct TapeGuard {
    ~TapeGuard() { ag::Tape::current().clear(); }
  } guard;
  const Case c{{2, 5, 3, 6}, 3, true};
  Inputs in = make_inputs(rng, c, 0.3);
  ag::Var r(from_double(c.shape, rng.normal_f32(in.x.numel())));
  {
    ag::Var x(in.x, true), gamma(in.gamma, true), beta(in.beta, true), scale(in.scale, true), shift(in.shift, true);
    ag::Tape::current().backward(ag::sum(ag::mul(ag::group_norm_act(x, gamma, beta, scale, shift, 3), r)));
    kernels::GroupNormActOut f = kernels::group_norm_act_forward(in.x, in.gamma, in.beta, in.scale, in.shift, 3);
    kernels::GroupNormActGrads g =
        kernels::group_norm_act_backward(in.x, in.gamma, in.beta, in.scale, in.shift, f.mean, f.rstd, r.value());
    CHECK(x.grad().to_vector() == g.dx.to_vector());
    CHECK(gamma.grad().to_vector() == g.dgamma.to_vector());
    CHECK(beta.grad().to_vector() == g.dbeta.to_vector());
    CHECK(scale.grad().to_vector() == g.dscale.to_vector());
    CHECK(shift.grad().to_vector() == g.dshift.to_vector());
  }
  {
    // No scale/shift, frozen affine: the gradient still reaches x.
    ag::Tape::current().clear();
    ag::Var x(in.x, true), gamma(in.gamma), beta(in.beta);
    ag::Tape::current().backward(ag::sum(ag::mul(ag::group_norm_act(x, gamma, beta, ag::Var(), ag::Var(), 3), r)));
    kernels::GroupNormActOut f = kernels::group_norm_act_forward(in.x, in.gamma, in.beta, Tensor(), Tensor(), 3);
    CHECK(x.grad().to_vector() == kernels::group_norm_act_backward(in.x, in.gamma, in.beta, Tensor(), Tensor(),
                                                                   f.mean, f.rstd, r.value())
                                      .dx.to_vector());
    CHECK_FALSE(gamma.has_grad());
    CHECK_FALSE(beta.has_grad());
  }
}

TEST_CASE("U-Net: the fused and unfused Block give the same forward and gradients", "[group_norm_act][unet]") {
  struct Restore {
    ~Restore() {
      models::set_fused_norm_act(true);
      ag::Tape::current().clear();
    }
  } restore;
  REQUIRE(models::fused_norm_act());  // the default
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 3;
  Generator gen(11);
  models::Unet model(cfg, gen);
  const Tensor x0 = randn({2, 8, 8, 3}, 5, 0), r = randn({2, 8, 8, 3}, 6, 0);
  const Tensor t = Tensor::from_vector({2}, {3.f, 700.f});

  struct Result {
    std::vector<float> out, dx;
    std::vector<std::vector<float>> grads;
  };
  auto run = [&](bool fused) {
    models::set_fused_norm_act(fused);
    for (const auto& p : model.params().all()) p.var.zero_grad();
    ag::Tape::current().clear();
    ag::Var x(x0, true);
    ag::Var out = model.forward(x, t, ag::Var());
    ag::Tape::current().backward(ag::sum(ag::mul(out, ag::Var(r))));
    Result res{out.value().to_vector(), x.grad().to_vector(), {}};
    for (const auto& p : model.params().all()) res.grads.push_back(p.var.grad().to_vector());
    ag::Tape::current().clear();
    return res;
  };
  const Result fused = run(true), unfused = run(false);
  // The fused Block (ag::conv2d_group_norm_act) sums its statistics in the conv's chunk order,
  // the unfused GroupNorm in its own: double sums of the same floats, which here (<= 1024 terms of
  // similar size) come out exact either way, so the forward is bitwise the unfused one. Were a sum
  // ever to round differently, one float mean or rstd would move by an ulp: this check would then
  // need the 1e-5 below (tests/test_conv2d_norm_act.cpp bounds that case).
  CHECK(fused.out == unfused.out);
  // Gradients: each fused Block's backward differs from the chain by ~1e-7
  // relative (recomputed h, sum order), propagated through ~20 layers (observed <= 2e-7): 1e-5.
  expect_close("dx", fused.dx, std::vector<double>(unfused.dx.begin(), unfused.dx.end()), 1e-5);
  const auto& params = model.params().all();
  for (std::size_t i = 0; i < params.size(); ++i)
    expect_close(params[i].name, fused.grads[i],
                 std::vector<double>(unfused.grads[i].begin(), unfused.grads[i].end()), 1e-5);
}

TEST_CASE("CUDA channel sums: the work split covers every element once (host emulation)", "[group_norm_act]") {
  // Walks channel_partial_kernel's grid and loops with the plan and index
  // functions the kernel itself uses (kernels/cuda/channel_plan.h): the CUDA
  // reductions of GroupNorm, the broadcast ops and this op all rest on them.
  using namespace dd::kernels::cuda;
  for (int64_t B : {1, 3, 128})
    for (int64_t S : {1, 7, 8, 9, 65, 1024, 1025})
      for (int64_t C : {1, 13, 32, 33, 512}) {
        if (B * S * C > (1 << 22)) continue;
        INFO("B=" << B << " S=" << S << " C=" << C);
        const ChunkPlan p = plan_chunks(B, S, C);
        REQUIRE(p.chunks >= 1);
        REQUIRE(p.chunks <= 65535);
        REQUIRE(p.ctiles * kColX >= C);
        std::vector<int> seen(static_cast<std::size_t>(B * S * C), 0);
        std::vector<int> slot(static_cast<std::size_t>(p.chunks * B * C), 0);
        bool index_ok = true;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t chunk = 0; chunk < p.chunks; ++chunk)
            for (int64_t c = 0; c < p.ctiles * kColX; ++c) {
              if (c >= C) continue;
              const int64_t s1 = chunk_end(chunk, p.rows, S);
              index_ok = index_ok && chunk * p.rows < s1;  // no empty chunk
              for (int ty = 0; ty < kColY; ++ty)
                for (int64_t s = chunk * p.rows + ty; s < s1; s += kColY) {
                  const int64_t i = element_index(b, s, c, S, C);
                  const BcIndex e = bc_index(i, S, C, B * S * C);
                  index_ok = index_ok && i >= 0 && i < B * S * C && e.b == b && e.c == c;
                  if (i >= 0 && i < B * S * C) ++seen[static_cast<std::size_t>(i)];
                }
              ++slot[static_cast<std::size_t>(partial_slot(0, chunk, b, c, p.chunks, B, C))];
            }
        CHECK(index_ok);
        CHECK(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; }));
        CHECK(std::all_of(slot.begin(), slot.end(), [](int v) { return v == 1; }));
      }
}

TEST_CASE("CUDA bc_index: the 32-bit path gives the 64-bit path's batch item and channel", "[group_norm_act]") {
  using namespace dd::kernels::cuda;
  DD_TEST_RANDOM(rng);
  // Shapes whose element count is just below 2^32 (the 32-bit path's last case), then indices
  // across the whole range, each also taken through the 64-bit path (n past 2^32).
  const int64_t big = int64_t(1) << 33;
  for (const auto& [S, C] : std::vector<std::pair<int64_t, int64_t>>{{3, 7}, {1024, 64}, {1, 1}, {65536, 65535}, {9, 512}}) {
    const int64_t B = int64_t(0xffffffffu) / (S * C);
    const int64_t n = B * S * C;
    REQUIRE(n <= int64_t(0xffffffffu));
    for (int t = 0; t < 2000; ++t) {
      const int64_t i = t < 3 ? std::vector<int64_t>{0, n - 1, n / 2}[t]
                              : static_cast<int64_t>(rng.engine()() % static_cast<uint64_t>(n));
      const BcIndex a = bc_index(i, S, C, n), e = bc_index(i, S, C, big);
      INFO("S " << S << " C " << C << " i " << i);
      REQUIRE(a.b == e.b);
      REQUIRE(a.c == e.c);
      REQUIRE(e.b == i / (S * C));
      REQUIRE(e.c == i % C);
    }
  }
}
