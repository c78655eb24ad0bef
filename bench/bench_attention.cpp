// Softmax attention (the U-Net's mid block; flash-style, kernels/attention.h) against a textbook
// cuBLAS attention written here (bench/attention_ref.cu), and linear attention (every level).
// Shapes: the CIFAR-10 preset's mid attention (4x4 = 16 positions, 4 heads of 32, batch 128) and,
// beyond the preset, 16x16 and 32x32 maps to show how the kernels scale with N.
// --cpu: the CPU backend, forward checked against the float64 reference.
#include <cmath>
#include <cstdio>
#include <memory>

#include "bench/bench_common.h"
#include "engine/context.h"
#include "kernels/attention.h"
#include "kernels/linear_attention.h"
#include "tests/reference/attention.h"
#include "tests/reference/linear_attention.h"
#ifdef DD_WITH_CUDA
#include "bench/attention_ref.h"
#endif

using namespace dd;
using namespace dd::bench;

namespace {
struct Case {
  const char* what;
  int64_t B, side;
};
std::vector<double> d64(const Tensor& t) {
  auto v = t.to_vector();
  return {v.begin(), v.end()};
}
}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const Device dev = a.device();
  const int64_t heads = 4, dh = 32, hidden = heads * dh;
  const int warm = a.warmup_or(5, 2), reps = a.repeats_or(30, 9);
  const double mm = measured_sgemm_tflops(dev), copy = measured_copy_gbs(dev);
  print_header("Attention (softmax: ours vs a cuBLAS reference) and linear attention", a);
  std::printf("Measured in this run: fp32 SGEMM %s %s (no TF32), copy %s GB/s. FLOPs: softmax attention forward "
              "4·B·heads·N²·dh, backward 8·B·heads·N²·dh (four N x N products; recomputation not counted). "
              "`%% of SGEMM` = achieved / measured SGEMM rate.\n\n",
              fmt(a.cpu ? mm * 1e3 : mm, 4).c_str(), a.cpu ? "GFLOP/s" : "TFLOP/s", fmt(copy, 4).c_str());

  std::vector<Case> cases = {{"preset mid attention", a.batch_or(128, 8), 4}};
  if (!a.quick) {
    cases.push_back({"16x16 map (beyond the preset)", a.batch_or(128, 4), 16});
    cases.push_back({"32x32 map (beyond the preset)", a.cpu ? 1 : 32, 32});
  }
  if (a.cpu)
    table_header({"softmax attention", "B x N", "dir", "ms", "GFLOP/s", "% of SGEMM", "rel err vs float64"});
  else
    table_header({"softmax attention", "B x N", "dir", "ours ms", "ours TFLOP/s", "% of SGEMM", "cuBLAS ref ms",
                  "ours / ref", "rel err vs CPU"});
  bool all_ok = true;
  uint64_t seed = 900;
  for (const Case& c : cases) {
    const int64_t N = c.side * c.side;
    const Pair qkv = random_pair({c.B, c.side, c.side, 3 * hidden}, a, seed += 10);
    const Pair dy = random_pair({c.B, c.side, c.side, hidden}, a, seed + 1);
    const double fl_f = 4.0 * c.B * heads * double(N) * N * dh, fl_b = 2 * fl_f;
    const std::string shp = str_cat(c.B, " x ", N);
    double err_f = NAN, err_b = NAN;
    bool ok = true;
    try {
      Tensor o = kernels::attention_forward(qkv.dev, heads, dh);
      Tensor g = kernels::attention_backward(qkv.dev, dy.dev, heads, dh);
      if (a.cpu) {
        err_f = rel_err(o, ref::attention(d64(qkv.cpu), c.B, N, heads, dh));
        ok &= check(str_cat("attention fwd ", shp, " vs float64"), err_f, 1e-4);
      } else {
        // Softmax over N terms and products of length dh and N: 1e-4 (reductions).
        err_f = rel_err(o, kernels::cpu::attention_forward(qkv.cpu, heads, dh));
        err_b = rel_err(g, kernels::cpu::attention_backward(qkv.cpu, dy.cpu, heads, dh));
        ok &= check(str_cat("attention fwd ", shp), err_f, 1e-4);
        ok &= check(str_cat("attention bwd ", shp), err_b, 1e-4);
      }
    } catch (const Error& e) {
      std::fprintf(stderr, "attention %s: %s\n", shp.c_str(), e.what());
      ok = false;
    }
    if (!ok) {
      all_ok = false;
      table_row({c.what, shp, "both", "FAILED or unavailable, not timed"});
      continue;
    }
    const double t_f = time_ms(dev, [&] { kernels::attention_forward(qkv.dev, heads, dh); }, warm, reps);
    const double t_b = time_ms(dev, [&] { kernels::attention_backward(qkv.dev, dy.dev, heads, dh); }, warm, reps);
    const double unit = a.cpu ? 1e9 : 1e12, peak = a.cpu ? mm * 1e3 : mm;
    if (a.cpu) {
      table_row({c.what, shp, "fwd", fmt(t_f), fmt(fl_f / (t_f * 1e-3) / unit), fmt(100 * fl_f / (t_f * 1e-3) / unit / peak), fmt_err(err_f)});
      table_row({c.what, shp, "bwd", fmt(t_b), fmt(fl_b / (t_b * 1e-3) / unit), fmt(100 * fl_b / (t_b * 1e-3) / unit / peak), "checked by dd_tests"});
      continue;
    }
#ifdef DD_WITH_CUDA
    RefAttention ref(qkv.dev, dy.dev, heads, dh);
    ref.forward();
    ref.backward();
    const Tensor ro = kernels::cpu::attention_forward(qkv.cpu, heads, dh);
    const Tensor rg = kernels::cpu::attention_backward(qkv.cpu, dy.cpu, heads, dh);
    bool rok = check(str_cat("cuBLAS ref fwd ", shp), rel_err(ref.out(), ro), 1e-4);
    rok &= check(str_cat("cuBLAS ref bwd ", shp), rel_err(ref.dqkv(), rg), 1e-4);
    DD_CHECK(rok, "the cuBLAS reference attention disagrees with the CPU backend: the yardstick is wrong");
    const double r_f = time_ms(dev, [&] { ref.forward(); }, warm, reps);
    const double r_b = time_ms(dev, [&] { ref.backward(); }, warm, reps);
    table_row({c.what, shp, "fwd", fmt(t_f), fmt(fl_f / (t_f * 1e-3) / unit), fmt(100 * fl_f / (t_f * 1e-3) / unit / peak),
               fmt(r_f), fmt(t_f / r_f), fmt_err(err_f)});
    table_row({c.what, shp, "bwd", fmt(t_b), fmt(fl_b / (t_b * 1e-3) / unit), fmt(100 * fl_b / (t_b * 1e-3) / unit / peak),
               fmt(r_b), fmt(t_b / r_b), fmt_err(err_b)});
#endif
  }

  // Linear attention at every level of the preset (N = 32², 16², 8², 4²): memory-bound.
  std::printf("\nLinear attention (every level of the CIFAR-10 preset): bytes = qkv read + out written (forward), "
              "qkv and dy read + dqkv written (backward). `bf16`: under the bf16 policy (GPU: the products on bf16 "
              "tensor cores; CPU: the same inputs rounded), the same fp32 tensors in and out.\n\n");
  std::vector<OpCase> lin;
  for (int side : {32, 16, 8, 4}) {
    const int64_t B = a.batch_or(128, 8);
    auto qkv = std::make_shared<Pair>(random_pair({B, side, side, 3 * hidden}, a, seed += 10));
    auto dy = std::make_shared<Pair>(random_pair({B, side, side, hidden}, a, seed + 1));
    const double q4 = double(qkv->cpu.numel()) * 4, o4 = double(dy->cpu.numel()) * 4;
    OpCase f;
    f.op = "linear_attention fwd";
    f.shape = fmt_shape(qkv->cpu.shape());
    f.bytes = q4 + o4;
    f.tol = 1e-4;
    f.run = [=](Device d) { return std::vector<Tensor>{kernels::linear_attention_forward(qkv->on(d), heads, dh)}; };
    f.ref64 = [=] {
      return std::vector<std::vector<double>>{ref::linear_attention(d64(qkv->cpu), B, int64_t(side) * side, heads, dh)};
    };
    lin.push_back(f);
    OpCase b;
    b.op = "linear_attention bwd";
    b.shape = f.shape;
    b.bytes = 2 * q4 + o4;
    b.tol = 1e-4;
    b.run = [=](Device d) { return std::vector<Tensor>{kernels::linear_attention_backward(qkv->on(d), dy->on(d), heads, dh)}; };
    lin.push_back(b);
    // The same under BF16: bf16 tensor-core products (kernels/cuda/linear_attention_tc.cu), checked
    // against the CPU under the same policy. Three bf16 roundings along the longest path (S, the
    // context, its own operands): 3 * 2^-8 relative at most.
    for (OpCase c : {f, b}) {
      const auto run = c.run;
      c.op += " bf16";
      c.tol = 3.0 / 256;
      c.ref64 = nullptr;
      c.run = [run](Device d) {
        const PrecisionScope scope(Precision::BF16);
        return run(d);
      };
      lin.push_back(c);
    }
    if (a.quick) break;
  }
  all_ok &= run_cases(a, lin, copy, warm, reps);
  return all_ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_attention: %s\n", e.what());
  return 2;
}
