// ops_demo: the main job until the U-Net app exists.
//
// 1. Times every op of the U-Net, forward and backward, on the CPU backend at
//    U-Net-sized shapes (batch 8, 32x32, 64 channels).
// 2. Trains a small time-conditioned denoiser assembled from all of those ops
//    (weight-standardized conv, GroupNorm, scale/shift, SiLU, pixel-unshuffle,
//    linear attention, full attention, nearest upsample, skip concat, time MLP)
//    with the noise-prediction objective on procedurally drawn shapes, through
//    the autograd tape and Adam, and prints the loss as it falls.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autograd/activation.h"
#include "autograd/adam.h"
#include "autograd/attention.h"
#include "autograd/broadcast.h"
#include "autograd/concat.h"
#include "autograd/conv2d.h"
#include "autograd/elementwise.h"
#include "autograd/group_norm.h"
#include "autograd/linear.h"
#include "autograd/linear_attention.h"
#include "autograd/loss.h"
#include "autograd/pixel_unshuffle.h"
#include "autograd/time_embedding.h"
#include "autograd/upsample.h"
#include "autograd/weight_standardize.h"
#include "engine/error.h"
#include "engine/rng.h"

using namespace dd;
using ag::Var;

namespace {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Median of `reps` runs of fn, after one warm-up.
double time_ms(const std::function<void()>& fn, int reps = 5) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    double t0 = now_ms();
    fn();
    t.push_back(now_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Forward and forward+backward of one op through the tape.
void bench_op(const char* name, const std::vector<Var>& inputs, const std::function<Var()>& op) {
  double fwd = time_ms([&] {
    ag::NoGrad ng;
    op();
  });
  double both = time_ms([&] {
    for (const Var& v : inputs) v.zero_grad();
    ag::Tape::current().clear();
    Var y = op();
    ag::Tape::current().backward(ag::sum(y));
  });
  ag::Tape::current().clear();
  std::printf("  %-34s %9.2f ms %9.2f ms\n", name, fwd, both - fwd);
}

void op_timings() {
  Generator g(1);
  const int64_t B = 8, H = 32, C = 64;
  auto param = [&](Shape s, float scale) {
    Tensor t = g.randn(s);
    Tensor r = Tensor::empty(s);
    const float* src = t.data();
    float* dst = r.data();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = src[i] * scale;
    return Var(r, true);
  };
  Var x = param({B, H, H, C}, 1.0f);
  Var w3 = param({C, 3, 3, C}, 0.05f), w1 = param({3 * 128, 1, 1, C}, 0.1f), b = param({C}, 0.1f);
  Var gamma = param({C}, 1.0f), beta = param({C}, 0.1f);
  Var scale = param({B, C}, 0.1f), shift = param({B, C}, 0.1f);
  Var small = param({B, 8, 8, 3 * 128}, 1.0f);
  Var qkv = param({B, H, H, 3 * 128}, 1.0f);
  Var lin_x = param({B, 256}, 1.0f), lin_w = param({256, 256}, 0.05f), lin_b = param({256}, 0.1f);
  Var t = Var(Tensor::from_vector({B}, {1, 50, 100, 200, 400, 600, 800, 999}), true);

  std::printf("CPU backend, batch %lld, %lldx%lld, %lld channels: median of 5\n", (long long)B,
              (long long)H, (long long)H, (long long)C);
  std::printf("  %-34s %12s %12s\n", "op", "forward", "backward");
  bench_op("conv2d 3x3 (weight-standardized)", {x, w3, b},
           [&] { return ag::conv2d(x, ag::weight_standardize(w3), b, 1); });
  bench_op("conv2d 1x1 64->384 (to_qkv)", {x, w1}, [&] { return ag::conv2d(x, w1, Var(), 0); });
  bench_op("group_norm (8 groups)", {x, gamma, beta}, [&] { return ag::group_norm(x, gamma, beta, 8); });
  bench_op("scale_shift", {x, scale, shift}, [&] { return ag::scale_shift(x, scale, shift); });
  bench_op("silu", {x}, [&] { return ag::silu(x); });
  bench_op("linear_attention (4x32, 1024 pos)", {qkv}, [&] { return ag::linear_attention(qkv, 4, 32); });
  bench_op("attention (4x32, 64 positions)", {small}, [&] { return ag::attention(small, 4, 32); });
  bench_op("pixel_unshuffle", {x}, [&] { return ag::pixel_unshuffle(x); });
  bench_op("upsample2x", {x}, [&] { return ag::upsample2x(x); });
  bench_op("concat (skip connection)", {x}, [&] { return ag::concat({x, x}); });
  bench_op("linear 256->256 + gelu", {lin_x, lin_w, lin_b}, [&] { return ag::gelu(ag::linear(lin_x, lin_w, lin_b)); });
  bench_op("time_embedding (dim 64)", {t}, [&] { return ag::time_embedding(t, 64); });
}

// ---- a small denoiser built from every op --------------------------------------------------

struct Net {
  int64_t dim = 16, time_dim = 64, heads = 2, dim_head = 8;
  std::vector<Var> params;
  Generator init{2024};

  Var p(Shape s, float bound) {  // uniform(-bound, bound), as PyTorch's default init
    Tensor t = Tensor::empty(s);
    float* d = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = static_cast<float>((2.0 * init.uniform() - 1.0) * bound);
    params.emplace_back(t, true);
    return params.back();
  }
  Var ones(int64_t c) { return params.emplace_back(Tensor::full({c}, 1.0f), true), params.back(); }
  Var zeros(int64_t c) { return params.emplace_back(Tensor::zeros({c}), true), params.back(); }
  Var conv_w(int64_t o, int64_t k, int64_t i) { return p({o, k, k, i}, 1.0f / std::sqrt(float(i * k * k))); }

  struct Block { Var w, b, gamma, beta; };
  Block block(int64_t ci, int64_t co) { return {conv_w(co, 3, ci), p({co}, 0.1f), ones(co), zeros(co)}; }

  Var mlp1_w, mlp1_b, mlp2_w, mlp2_b, ss_w, ss_b;
  Var init_w, init_b;
  Block b1, b2, mid, up1;
  Var la_qkv, la_out_w, la_out_b, la_g, la_beta;
  Var down_w, down_b, at_qkv, at_out_w, at_out_b, up_w, up_b, final_w, final_b;

  Net() {
    mlp1_w = p({time_dim, dim}, 1.0f / std::sqrt(float(dim)));
    mlp1_b = p({time_dim}, 0.1f);
    mlp2_w = p({time_dim, time_dim}, 1.0f / std::sqrt(float(time_dim)));
    mlp2_b = p({time_dim}, 0.1f);
    ss_w = p({2 * dim, time_dim}, 1.0f / std::sqrt(float(time_dim)));
    ss_b = p({2 * dim}, 0.1f);
    init_w = conv_w(dim, 1, 1);
    init_b = p({dim}, 0.5f);
    b1 = block(dim, dim);
    b2 = block(dim, dim);
    la_qkv = conv_w(3 * heads * dim_head, 1, dim);
    la_out_w = conv_w(dim, 1, heads * dim_head);
    la_out_b = p({dim}, 0.1f);
    la_g = ones(dim);
    la_beta = zeros(dim);
    down_w = conv_w(2 * dim, 1, 4 * dim);
    down_b = p({2 * dim}, 0.1f);
    mid = block(2 * dim, 2 * dim);
    at_qkv = conv_w(3 * heads * dim_head, 1, 2 * dim);
    at_out_w = conv_w(2 * dim, 1, heads * dim_head);
    at_out_b = p({2 * dim}, 0.1f);
    up_w = conv_w(dim, 3, 2 * dim);
    up_b = p({dim}, 0.1f);
    up1 = block(2 * dim, dim);
    final_w = conv_w(1, 1, dim);
    final_b = p({1}, 0.1f);
  }

  Var run_block(const Block& bl, const Var& x, const Var* ss) {
    Var h = ag::group_norm(ag::conv2d(x, ag::weight_standardize(bl.w), bl.b, 1), bl.gamma, bl.beta, 4);
    if (ss) h = ag::scale_shift(h, ss[0], ss[1]);
    return ag::silu(h);
  }

  Var forward(const Var& x, const Var& t) {
    Var temb = ag::linear(ag::gelu(ag::linear(ag::time_embedding(t, dim), mlp1_w, mlp1_b)), mlp2_w, mlp2_b);
    std::vector<Var> ss = ag::chunk(ag::linear(ag::silu(temb), ss_w, ss_b), 2);
    Var h0 = ag::conv2d(x, init_w, init_b, 0);                                   // [B,16,16,d]
    Var h = ag::add(run_block(b2, run_block(b1, h0, ss.data()), nullptr), h0);  // a residual pair
    Var la = ag::linear_attention(ag::conv2d(h, la_qkv, Var(), 0), heads, dim_head);
    h = ag::add(ag::group_norm(ag::conv2d(la, la_out_w, la_out_b, 0), la_g, la_beta, 1), h);
    Var skip = h;
    Var m = ag::conv2d(ag::pixel_unshuffle(h), down_w, down_b, 0);              // [B,8,8,2d]
    m = run_block(mid, m, nullptr);
    Var at = ag::attention(ag::conv2d(m, at_qkv, Var(), 0), heads, dim_head);
    m = ag::add(ag::conv2d(at, at_out_w, at_out_b, 0), m);
    Var u = ag::conv2d(ag::upsample2x(m), up_w, up_b, 1);                        // [B,16,16,d]
    u = run_block(up1, ag::concat({u, skip}), nullptr);
    return ag::conv2d(u, final_w, final_b, 0);
  }
};

// Images of one random filled disk or rectangle in [-1, 1], 16x16, one channel.
Tensor draw_shapes(Generator& g, int64_t B, int64_t S) {
  Tensor img = Tensor::empty({B, S, S, 1});
  float* d = img.data();
  for (int64_t b = 0; b < B; ++b) {
    bool disk = g.uniform() < 0.5;
    double cx = 4 + g.uniform() * (S - 8), cy = 4 + g.uniform() * (S - 8), r = 2 + g.uniform() * 3;
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        double dx = x - cx, dy = y - cy;
        bool in = disk ? dx * dx + dy * dy <= r * r : std::fabs(dx) <= r && std::fabs(dy) <= r * 0.6;
        d[(b * S + y) * S + x] = in ? 1.0f : -1.0f;
      }
  }
  return img;
}

void train_demo(int steps) {
  const int64_t B = 16, S = 16, T = 1000;
  std::vector<double> abar(T);
  double prod = 1.0;
  for (int64_t i = 0; i < T; ++i) {
    prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * double(i) / double(T - 1));  // linear betas
    abar[i] = prod;
  }
  Net net;
  int64_t n_params = 0;
  for (const Var& v : net.params) n_params += v.value().numel();
  ag::Adam opt(net.params, {2e-3f, 0.9f, 0.999f, 1e-8f, 0.0f});
  Generator data(7), noise(8);
  std::printf("\nTraining a %lld-parameter denoiser (every op above) on drawn shapes, batch %lld, 16x16:\n",
              (long long)n_params, (long long)B);
  double t0 = now_ms(), window = 0;
  for (int step = 1; step <= steps; ++step) {
    Tensor x0 = draw_shapes(data, B, S);
    Tensor eps = noise.randn(x0.shape());
    std::vector<float> tv(B), a(B), s(B);
    for (int64_t b = 0; b < B; ++b) {
      int64_t t = static_cast<int64_t>(data.uniform_int(T));
      tv[b] = float(t);
      a[b] = float(std::sqrt(abar[t]));
      s[b] = float(std::sqrt(1.0 - abar[t]));
    }
    ag::Tape::current().clear();
    // q_sample: sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, per-sample coefficients as [B, 1].
    Var xt = ag::add(ag::mul_bc(Var(x0), Var(Tensor::from_vector({B, 1}, a))),
                     ag::mul_bc(Var(eps), Var(Tensor::from_vector({B, 1}, s))));
    Var pred = net.forward(xt, Var(Tensor::from_vector({B}, tv)));
    Var loss = ag::loss(pred, Var(eps), kernels::LossType::Huber);
    opt.zero_grad();
    ag::Tape::current().backward(loss);
    ag::clip_grad_norm(net.params, 1.0);
    opt.step();
    window += loss.value().item();
    if (step % 25 == 0) {
      double el = (now_ms() - t0) / 1000.0;
      std::printf("  step %4d  huber loss %.4f (mean of last 25)  %.1f img/s\n", step, window / 25,
                  step * B / el);
      window = 0;
    }
  }
  ag::Tape::current().clear();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int steps = argc > 1 ? std::atoi(argv[1]) : 300;
    if (steps <= 0) {
      std::fprintf(stderr, "usage: ops_demo [training steps > 0]\n");
      return 2;
    }
    op_timings();
    train_demo(steps);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ops_demo: %s\n", e.what());
    return 1;
  }
}
