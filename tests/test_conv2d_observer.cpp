// kernels::set_conv2d_observer: every stride-1 forward entry point reports the plain conv it runs
// (x as the conv reads it), once, and one U-Net forward reports each of its conv weights once.
// bench_conv2d's list of the preset's convolutions rests on this: when the Block's fused conv and
// the parts / upsample / unshuffle convs bypassed kernels::conv2d_forward, the list lost half of
// its 36 shapes without any error.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "engine/rng.h"
#include "kernels/conv2d.h"
#include "models/unet.h"

using namespace dd;

namespace {
std::vector<kernels::Conv2dCall> g_calls;
void record(const kernels::Conv2dCall& c) { g_calls.push_back(c); }

// The recorder for one scope, from an empty list; the previous observer comes back even after a
// failed REQUIRE.
struct Recording {
  Recording() { g_calls.clear(); }
  kernels::Conv2dObserverScope scope{record};
};

Tensor rnd(const Shape& s, uint64_t seed) { return randn(s, seed, 0); }

std::string key(const Shape& s) { return shape_str(s); }
}  // namespace

TEST_CASE("conv2d observer: each entry point reports the conv it runs once", "[conv2d][observer]") {
  const Recording rec;
  const Tensor b4 = rnd({4}, 1);
  kernels::conv2d_forward(rnd({2, 5, 6, 3}, 2), rnd({4, 3, 3, 3}, 3), b4, 1);
  kernels::conv2d_forward_parts({rnd({2, 5, 6, 3}, 4), rnd({2, 5, 6, 2}, 5)}, rnd({4, 1, 1, 5}, 6), Tensor(), 0);
  kernels::conv2d_forward_up2(rnd({2, 3, 4, 3}, 7), rnd({4, 3, 3, 3}, 8), b4, 1);
  kernels::conv2d_forward_unshuffle2(rnd({2, 4, 6, 3}, 9), rnd({4, 1, 1, 12}, 10), b4, 0);
  {
    // A call inside another reporting entry point (the CUDA compositions) is not reported again.
    const kernels::Conv2dReport outer({{1, 2, 2, 1}, {1, 1, 1, 1}, 0, false});
    kernels::conv2d_forward(rnd({2, 5, 6, 3}, 11), rnd({4, 3, 3, 3}, 12), Tensor(), 1);
  }
  REQUIRE(g_calls.size() == 5);
  const Shape xs[5] = {{2, 5, 6, 3}, {2, 5, 6, 5}, {2, 6, 8, 3}, {2, 2, 3, 12}, {1, 2, 2, 1}};
  const Shape ws[5] = {{4, 3, 3, 3}, {4, 1, 1, 5}, {4, 3, 3, 3}, {4, 1, 1, 12}, {1, 1, 1, 1}};
  const int pads[5] = {1, 0, 1, 0, 0};
  const bool biases[5] = {true, false, true, true, false};
  for (int i = 0; i < 5; ++i) {
    INFO("call " << i);
    CHECK(g_calls[i].x == xs[i]);
    CHECK(g_calls[i].w == ws[i]);
    CHECK(g_calls[i].padding == pads[i]);
    CHECK(g_calls[i].bias == biases[i]);
  }
  // After the outer scope closed, calls report again; without an observer nothing is recorded.
  kernels::conv2d_forward(rnd({1, 3, 3, 2}, 13), rnd({2, 1, 1, 2}, 14), Tensor(), 0);
  CHECK(g_calls.size() == 6);
  kernels::set_conv2d_observer(nullptr);
  kernels::conv2d_forward(rnd({1, 3, 3, 2}, 13), rnd({2, 1, 1, 2}, 14), Tensor(), 0);
  CHECK(g_calls.size() == 6);
}

TEST_CASE("conv2d observer: one U-Net forward reports each conv weight once", "[conv2d][observer][unet]") {
  for (const bool fused : {true, false})
    for (const bool self_cond : {false, true}) {
      INFO("fused norm-act " << fused << ", self-conditioning " << self_cond);
      models::UnetConfig cfg;
      cfg.dim = 8;
      cfg.dim_mults = {1, 2};
      cfg.self_condition = self_cond;
      Generator gen(3);
      models::Unet model(cfg, gen);
      const bool was_fused = models::fused_norm_act();
      models::set_fused_norm_act(fused);
      std::vector<std::string> reported, weights;
      {
        const Recording rec;
        ag::NoGrad no_grad;
        const ag::Var x(rnd({2, 8, 8, 3}, 20));
        model.forward(x, Tensor::from_vector({2}, {5.0f, 40.0f}), self_cond ? ag::Var(rnd({2, 8, 8, 3}, 21)) : ag::Var());
        for (const kernels::Conv2dCall& c : g_calls) {
          reported.push_back(key(c.w));
          CHECK(c.x[0] == 2);
          CHECK(c.x[3] == c.w[3]);
        }
      }
      models::set_fused_norm_act(was_fused);
      for (const models::Parameter& p : model.params().all())
        if (p.kind == models::ParamKind::ConvWeight) weights.push_back(key(p.var.value().shape()));
      std::sort(reported.begin(), reported.end());
      std::sort(weights.begin(), weights.end());
      CHECK(weights.size() > 10);
      CHECK(reported == weights);
    }
}
