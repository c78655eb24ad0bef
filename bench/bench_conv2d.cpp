// Every distinct convolution of the CIFAR-10 preset U-Net (dim 64, dim_mults 1,2,4,8, 3 channels,
// 32x32), forward, backward-data and backward-weight. GPU: ours vs cuDNN (NHWC fp32, the fastest
// algorithm cudnnFind* measures; FMA math = true fp32 like ours, and TF32 for reference) at batch 128.
// --cpu: the CPU backend at a smaller batch (default 8), GFLOP/s; for the 3x3/p1 convs also the
// three directions with each path forced (im2col, Winograd F(2x2,3x3) and F(4x4,3x3): see
// kernels/cpu/conv2d_winograd.h), each validated first, and which one the per-shape rules run.
// --preset cifar|fmnist (default cifar): whose convolutions (fmnist: dim 32, 1,2,4, 1 channel, 28x28).
// --only TEXT: only the shapes whose key (first column) contains TEXT. --dim N: the U-Net's base width.
// GPU, then: our tensor-core kernels (kernels/cuda/conv2d_tc.cu) in bf16 and TF32 against cuDNN at
// the same precision (bf16: cuDNN gets bf16 tensors, ours takes fp32 and includes its cast pre-pass),
// ours under the tile rules and under --conv-autotune (each shape's options timed, the fastest run).
// --precision fp32|tf32|bf16|all (default all) picks the tables. --sweep (GPU): instead of the
// tables, every tile and dw split of the tensor-core kernels per shape (bench/conv_tc_sweep.h).
//
// ptxas -v of the tensor-core kernels (sm_90, CUDA 13.0, 2026-11-28; __launch_bounds__ caps them at
// 128 registers), tiles 128x128 / 128x64 / 64x64 / 128x32 / 256x64 / 64x256: no spills; registers
// fprop bf16 (plain, with the sums epilogue) 125/128, 128/128, 90/123, 94/125, 128/128, 128/128;
// fprop tf32 120/128, 120/128, 86/123, 90/125, 122/128, 116/127; wgrad bf16 124, 124, 106, 101,
// 122, 128; wgrad tf32 124, 124, 100, 96, 122, 128. Regenerate with scripts/ptxas_conv2d_tc.sh.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "bench/bench_common.h"
#include "bench/conv_tc_sweep.h"
#include "bench/unet_conv_shapes.h"
#include "engine/context.h"
#include "kernels/conv2d.h"
#include "kernels/conv_autotune.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "tests/reference/conv2d.h"
#ifdef DD_BENCH_CUDNN
#include "bench/cudnn_conv.h"
#endif

using namespace dd;
using namespace dd::bench;

namespace {

double dot(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  double s = 0;
  for (std::size_t i = 0; i < va.size(); ++i) s += double(va[i]) * vb[i];
  return s;
}
double norm(const Tensor& a) { return std::sqrt(dot(a, a)); }

// CPU mode: the forward against the float64 reference on image 0, and the backward by the adjoint
// identities <dy, conv(x, w)> = <dx, x> = <dw, w> (each side a linear map), scaled by |dy| |conv(x, w)|.
bool validate_cpu(const ConvShape& s, const ConvInputs& in, const Tensor& y, const kernels::Conv2dGrads& g) {
  ref::ConvDims d{1, s.h, s.w, s.ci, s.co, s.k, s.pad};
  auto to_d = [](const std::vector<float>& v, std::size_t n) { return std::vector<double>(v.begin(), v.begin() + n); };
  const auto xv = in.x.to_vector();
  std::vector<double> bias = s.bias ? to_d(in.bias.to_vector(), s.co) : std::vector<double>{};
  std::vector<double> y0 = ref::conv2d(d, to_d(xv, d.x_numel()), to_d(in.w.to_vector(), d.w_numel()), bias);
  const auto yv = y.to_vector();
  Tensor y_img0 = Tensor::from_vector({d.y_numel()}, std::vector<float>(yv.begin(), yv.begin() + d.y_numel()));
  bool ok = check(s.key() + " fwd vs float64 (image 0)", rel_err(y_img0, y0), 1e-4);
  Tensor y_nb = kernels::cpu::conv2d_forward(in.x, in.w, Tensor(), int(s.pad));
  const double ydy = dot(in.dy, y_nb), scale = norm(in.dy) * norm(y_nb);
  ok &= check(s.key() + " bwd-data adjoint", std::fabs(dot(g.dx, in.x) - ydy) / scale, 1e-5);
  ok &= check(s.key() + " bwd-weight adjoint", std::fabs(dot(g.dw, in.w) - ydy) / scale, 1e-5);
  return ok;
}

#ifdef DD_WITH_CUDA
// The option --conv-autotune chose for the direction dir ("fwd", "dx", "dw") of the one shape
// tuned since the table was last cleared.
std::string tuned_option(const std::string& dir) {
  const auto e = kernels::conv_autotune_entry(dir);
  return e ? e->option : "?";
}

// Ours on tensor cores (the Context precision routes kernels::conv2d_* to conv2d_tc.cu) against
// cuDNN in the same precision (cudnnFind's fastest algorithm); ours twice: under the tile rules and
// under --conv-autotune (kernels/conv_autotune.h: every option of the shape timed, the fastest
// run), each validated against the CPU backend first, as cuDNN is. Returns false when a shape
// failed validation.
bool tensor_core_table(Precision prec, const std::vector<ConvShape>& shapes, int64_t B, int warm, int reps) {
  const Device dev = Device::CUDA;
  const bool bf16 = prec == Precision::BF16;
  std::printf("\n### Tensor cores, %s (fp32 accumulation): ours vs cuDNN %s, batch %lld\n\n%s", precision_name(prec),
              bf16 ? "with bf16 tensors" : "with fp32 tensors and TF32 math", static_cast<long long>(B),
              bf16 ? "Ours reads x and w as bf16 tensors, as the bf16 training step keeps them, and dy in fp32 (packed "
                     "to bf16 by each backward call); it writes fp32 outputs, cuDNN bf16 ones. cuDNN's bf16 bwd-weight "
                     "leaves out dbias (cudnnConvolutionBackwardBias has no bf16); ours includes it.\n\n"
                   : "");
  table_header({"conv (HxW Ci->Co k p)", "uses", "dir", "ours ms", "ours TFLOP/s", "cuDNN ms", "cuDNN TFLOP/s",
                "ours / cuDNN", "tuned ms", "tuned / cuDNN", "tuned option", "cuDNN algos (f/d/w)"});
  Context ctx;
  ctx.set_precision(prec);
  ContextScope scope(ctx);
  double tot_ours = 0, tot_ref = 0, tot_tuned = 0;
  int tuned_slower = 0;
  bool all_ok = true;
  uint64_t seed = 5000;
  for (const ConvShape& s : shapes) {
    seed += 10;
    const ConvInputs in = make_conv_inputs(s, B, dev, seed);
    const double gflop = s.flops_per_image() * double(B) / 1e9;
    const int pad = int(s.pad);
    // Our operands as the bf16 training step hands them over (autograd/conv2d_keep.h): x and w as
    // their bf16 copies, which the kernels read in place; dy in fp32 (gradients are fp32), packed
    // by each backward call. The same bits as from fp32 x and w, which the kernels round to bf16
    // first; before 2026-11-29 this table gave ours fp32 x and w, and timed their packing too.
    const Tensor xo = bf16 ? in.x.to(DType::BF16) : in.x, wo = bf16 ? in.w.to(DType::BF16) : in.w;
    auto fwd = [&] { return kernels::conv2d_forward(xo, wo, in.bias, pad); };
    auto bwd_d = [&] { return kernels::conv2d_backward(xo, wo, in.dy, pad, true, false, false); };
    auto bwd_w = [&] { return kernels::conv2d_backward(xo, wo, in.dy, pad, false, true, s.bias); };
    // Relative to the largest |expected|: rounding both operands (bf16 2^-8, tf32 2^-11 each) over
    // reductions of up to 9*512 random-sign terms stays well inside these; cuDNN bf16 also rounds
    // its outputs to bf16 (2^-8).
    const double tol = bf16 ? 2e-2 : 5e-3;
    bool ok = true;
    // The CPU backend's results at batch 128, computed once: ours under the rules, ours autotuned
    // and cuDNN are each checked against them.
    Tensor yc;
    kernels::Conv2dGrads gc;
    try {
      Tensor xc = in.x.to(Device::CPU), wc = in.w.to(Device::CPU), dyc = in.dy.to(Device::CPU);
      Tensor bc = s.bias ? in.bias.to(Device::CPU) : Tensor();
      yc = kernels::cpu::conv2d_forward(xc, wc, bc, pad);
      gc = kernels::cpu::conv2d_backward(xc, wc, dyc, pad, true, true, s.bias);
      kernels::Conv2dGrads gd = bwd_d(), gw = bwd_w();
      const std::string name = s.key() + " ours " + precision_name(prec) + " ";
      ok &= check(name + "fwd vs cpu", rel_err(fwd(), yc), tol);
      ok &= check(name + "bwd-data vs cpu", rel_err(gd.dx, gc.dx), tol);
      ok &= check(name + "bwd-weight vs cpu", rel_err(gw.dw, gc.dw), tol);
      if (s.bias) ok &= check(name + "dbias vs cpu", rel_err(gw.dbias, gc.dbias), 1e-4);
    } catch (const Error& e) {
      ok = false;
      std::fprintf(stderr, "%s: %s\n", s.key().c_str(), e.what());
    }
    if (!ok) {
      all_ok = false;
      table_row({s.key(), std::to_string(s.uses), "all", "FAILED validation, not timed"});
      continue;
    }
    const double ours[3] = {time_ms(dev, [&] { fwd(); }, warm, reps), time_ms(dev, [&] { bwd_d(); }, warm, reps),
                            time_ms(dev, [&] { bwd_w(); }, warm, reps)};
    // The same calls with autotuning on: the first of each tunes (every option timed on these
    // operands), then the chosen kernels are validated and timed like the rules'.
    double tuned[3] = {NAN, NAN, NAN};
    std::string tuned_opt[3] = {"-", "-", "-"};
    kernels::clear_conv_autotune();
    kernels::set_conv_autotune(true);
    try {
      const std::string name = s.key() + " ours tuned " + precision_name(prec) + " ";
      bool tok = check(name + "fwd vs cpu", rel_err(fwd(), yc), tol);
      tok &= check(name + "bwd-data vs cpu", rel_err(bwd_d().dx, gc.dx), tol);
      tok &= check(name + "bwd-weight vs cpu", rel_err(bwd_w().dw, gc.dw), tol);
      if (tok) {
        tuned[0] = time_ms(dev, [&] { fwd(); }, warm, reps);
        tuned[1] = time_ms(dev, [&] { bwd_d(); }, warm, reps);
        tuned[2] = time_ms(dev, [&] { bwd_w(); }, warm, reps);
        tuned_opt[0] = tuned_option("fwd"), tuned_opt[1] = tuned_option("dx"), tuned_opt[2] = tuned_option("dw");
      } else {
        all_ok = false;
      }
    } catch (const Error& e) {
      all_ok = false;
      std::fprintf(stderr, "%s: tuned: %s\n", s.key().c_str(), e.what());
    }
    kernels::set_conv_autotune(false);
    kernels::clear_conv_autotune();
    double ref[3] = {NAN, NAN, NAN};
    std::string algos = "-";
#ifdef DD_BENCH_CUDNN
    try {
      CudnnConv c(s, B, bf16 ? CudnnMode::BF16 : CudnnMode::TF32);
      algos = c.algos();
      const DType t = bf16 ? DType::BF16 : DType::F32;
      Tensor x = in.x.to(t), w = in.w.to(t), dy = in.dy.to(t), bias = s.bias ? in.bias.to(t) : Tensor();
      Tensor y2 = Tensor::empty(in.dy.shape(), dev, t), dx2 = Tensor::empty(in.x.shape(), dev, t);
      // cudnnConvolutionBackwardBias refuses bf16 (CUDNN_STATUS_NOT_SUPPORTED on the H200, 2026-11-27): its
      // bf16 bwd-weight goes without dbias, which ours includes (a column sum, a few percent).
      Tensor dw2 = Tensor::empty(in.w.shape(), dev, t), db2 = s.bias && !bf16 ? Tensor::empty({s.co}, dev, t) : Tensor();
      c.forward(x, w, bias, y2);
      c.backward_data(w, dy, dx2);
      c.backward_weight(x, dy, dw2, db2);
      const std::string name = s.key() + " cuDNN " + precision_name(prec) + " ";
      bool cok = check(name + "fwd vs cpu", rel_err(y2.to(DType::F32), yc), tol);
      cok &= check(name + "bwd-data vs cpu", rel_err(dx2.to(DType::F32), gc.dx), tol);
      cok &= check(name + "bwd-weight vs cpu", rel_err(dw2.to(DType::F32), gc.dw), tol);
      if (cok) {
        ref[0] = time_ms(dev, [&] { c.forward(x, w, bias, y2); }, warm, reps);
        ref[1] = time_ms(dev, [&] { c.backward_data(w, dy, dx2); }, warm, reps);
        ref[2] = time_ms(dev, [&] { c.backward_weight(x, dy, dw2, db2); }, warm, reps);
      } else {
        std::fprintf(stderr, "%s: cuDNN %s disagrees with the CPU backend; its columns stay empty\n", s.key().c_str(),
                     precision_name(prec));
      }
    } catch (const Error& e) {
      std::fprintf(stderr, "%s: cuDNN %s: %s\n", s.key().c_str(), precision_name(prec), e.what());
    }
#endif
    const char* dirs[3] = {"fwd", "bwd-data", "bwd-weight"};
    for (int i = 0; i < 3; ++i) {
      tot_ours += ours[i] * s.uses;
      tot_ref += ref[i] * s.uses;
      tot_tuned += tuned[i] * s.uses;
      tuned_slower += tuned[i] > ref[i];
      table_row({s.key(), std::to_string(s.uses), dirs[i], fmt(ours[i]), fmt(gflop / (ours[i] * 1e-3) / 1e3),
                 fmt(ref[i]), fmt(gflop / (ref[i] * 1e-3) / 1e3), fmt(ours[i] / ref[i]), fmt(tuned[i]),
                 fmt(tuned[i] / ref[i]), tuned_opt[i], algos});
    }
  }
  std::printf("\nAll convolutions of one forward + backward in %s: ours %s ms, cuDNN %s ms, ratio %s; ours tuned %s ms, "
              "ratio %s, %d of %zu shape-directions slower than cuDNN tuned.%s\n",
              precision_name(prec), fmt(tot_ours).c_str(), fmt(tot_ref).c_str(), fmt(tot_ours / tot_ref).c_str(),
              fmt(tot_tuned).c_str(), fmt(tot_tuned / tot_ref).c_str(), tuned_slower, 3 * shapes.size(),
              all_ok ? "" : " Some shapes were not timed (see above).");
  return all_ok;
}
#endif

}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const Device dev = a.device();
  const int64_t B = a.batch_or(128, 8);
  const int warm = a.warmup_or(3, 2), reps = a.repeats_or(20, 9);

  models::UnetConfig cfg;
  const std::string preset = a.get("--preset", "cifar");
  DD_CHECK(preset == "cifar" || preset == "fmnist", "bench_conv2d: --preset ", preset, " is not cifar or fmnist");
  const bool fmnist = preset == "fmnist";
  cfg.dim = std::stoi(a.get("--dim", fmnist ? "32" : "64"));  // --dim 16: the CPU demo preset
  cfg.dim_mults = fmnist ? std::vector<int>{1, 2, 4} : std::vector<int>{1, 2, 4, 8};
  cfg.channels = fmnist ? 1 : 3;
  const std::vector<ConvShape> shapes = unet_conv_shapes(cfg, fmnist ? 28 : 32);
  const std::string precision = a.get("--precision", "all");
  DD_CHECK(precision == "all" || precision == "fp32" || precision == "tf32" || precision == "bf16",
           "bench_conv2d: --precision ", precision, " is not fp32, tf32, bf16 or all");
  // --sweep (GPU): the tensor-core tile sweep (bench/conv_tc_sweep.h) instead of the tables.
  const bool sweep = std::find(a.rest.begin(), a.rest.end(), "--sweep") != a.rest.end();
  DD_CHECK(!(sweep && a.cpu), "bench_conv2d: --sweep times the tensor-core kernels and needs the GPU (no --cpu)");
  const bool fp32_table = a.cpu || (!sweep && (precision == "all" || precision == "fp32"));

  print_header(str_cat("Convolutions of the ", fmnist ? "Fashion-MNIST" : "CIFAR-10", " preset U-Net, batch ", B, a.cpu ? " (CPU: a smaller batch than training's 128)" : ""), a);
  std::printf("%zu distinct convolutions, found by recording one forward of models/unet.cpp. `uses`: calls per "
              "forward. TFLOP/s counts 2·MACs of the direction alone (bias excluded). %s\n\n", shapes.size(),
              a.cpu ? "" : "cuDNN fp32 = CUDNN_FMA_MATH (no TF32, the precision of ours); ratio = our time / cuDNN fp32 time (>1: we are slower). cuDNN TF32 for reference.");
  if (a.cpu)
    table_header({"conv (HxW Ci->Co k p)", "uses", "dir", "ms", "GFLOP/s", "im2col ms", "winograd ms",
                  "winograd4 ms", "rule runs"});
  else if (fp32_table)
    table_header({"conv (HxW Ci->Co k p)", "uses", "dir", "ours ms", "ours TFLOP/s", "cuDNN fp32 ms",
                  "cuDNN fp32 TFLOP/s", "ours / cuDNN", "cuDNN TF32 ms", "cuDNN algos fp32 (f/d/w)"});

  double tot_ours = 0, tot_ref = 0;
  bool all_ok = true;
  uint64_t seed = 1000;
  const std::string only = a.get("--only", "");  // time only the shapes whose key contains this
  for (const ConvShape& s : shapes) {
    if (!fp32_table) break;
    if (!only.empty() && s.key().find(only) == std::string::npos) continue;
    seed += 10;
    const ConvInputs in = make_conv_inputs(s, B, dev, seed);
    const double gflop = s.flops_per_image() * double(B) / 1e9;
    const int pad = int(s.pad);
    auto fwd = [&] { return kernels::conv2d_forward(in.x, in.w, in.bias, pad); };
    auto bwd_d = [&] { return kernels::conv2d_backward(in.x, in.w, in.dy, pad, true, false, false); };
    auto bwd_w = [&] { return kernels::conv2d_backward(in.x, in.w, in.dy, pad, false, true, s.bias); };

    // Validate first; a kernel that fails (or does not exist yet) is not timed.
#ifdef DD_BENCH_CUDNN
    std::unique_ptr<CudnnConv> cudnn[2];  // [0] fp32 (FMA math), [1] TF32; algorithms found once
#endif
    bool ok = true;
    std::string why;
    try {
      Tensor y = fwd();
      kernels::Conv2dGrads gd = bwd_d(), gw = bwd_w();
      if (a.cpu) {
        kernels::Conv2dGrads g{gd.dx, gw.dw, gw.dbias};
        ok = validate_cpu(s, in, y, g);
      } else {
        Tensor xc = in.x.to(Device::CPU), wc = in.w.to(Device::CPU), dyc = in.dy.to(Device::CPU);
        Tensor bc = s.bias ? in.bias.to(Device::CPU) : Tensor();
        Tensor yc = kernels::cpu::conv2d_forward(xc, wc, bc, pad);
        kernels::Conv2dGrads gc = kernels::cpu::conv2d_backward(xc, wc, dyc, pad, true, true, s.bias);
        // fp32 convolutions with long reductions (up to 9·1024 terms per output, 128·32·32 per dw): 1e-4.
        ok &= check(s.key() + " fwd vs cpu", rel_err(y, yc), 1e-4);
        ok &= check(s.key() + " bwd-data vs cpu", rel_err(gd.dx, gc.dx), 1e-4);
        ok &= check(s.key() + " bwd-weight vs cpu", rel_err(gw.dw, gc.dw), 1e-4);
        if (s.bias) ok &= check(s.key() + " dbias vs cpu", rel_err(gw.dbias, gc.dbias), 1e-4);
#ifdef DD_BENCH_CUDNN
        // cuDNN is checked the same way, so a descriptor mistake cannot pass as a fast yardstick.
        // fp32 (FMA math): the bound of ours. TF32 rounds each operand to 10 mantissa bits
        // (relative 2^-11 per product): 1e-2 over reductions of up to 9·768 terms.
        for (int tf32 = 0; tf32 < 2; ++tf32) try {
          cudnn[tf32] = std::make_unique<CudnnConv>(s, B, tf32 ? CudnnMode::TF32 : CudnnMode::FP32);
          CudnnConv& c = *cudnn[tf32];
          Tensor y2 = Tensor::empty(yc.shape(), dev), dx2 = Tensor::empty(xc.shape(), dev);
          Tensor dw2 = Tensor::empty(wc.shape(), dev), db2 = s.bias ? Tensor::empty({s.co}, dev) : Tensor();
          c.forward(in.x, in.w, in.bias, y2);
          c.backward_data(in.w, in.dy, dx2);
          c.backward_weight(in.x, in.dy, dw2, db2);
          const double tol = tf32 ? 1e-2 : 1e-4;
          const std::string name = s.key() + (tf32 ? " cuDNN TF32 " : " cuDNN fp32 ");
          bool cok = check(name + "fwd vs cpu", rel_err(y2, yc), tol);
          cok &= check(name + "bwd-data vs cpu", rel_err(dx2, gc.dx), tol);
          cok &= check(name + "bwd-weight vs cpu", rel_err(dw2, gc.dw), tol);
          if (s.bias) cok &= check(name + "dbias vs cpu", rel_err(db2, gc.dbias), tol);
          if (!cok) {
            std::fprintf(stderr, "%s: cuDNN disagrees with the CPU backend; its columns stay empty\n", s.key().c_str());
            cudnn[tf32].reset();
          }
        } catch (const Error& e) {
          std::fprintf(stderr, "%s: cuDNN: %s\n", s.key().c_str(), e.what());
          cudnn[tf32].reset();
        }
#endif
      }
    } catch (const Error& e) {
      ok = false;
      why = e.what();
      std::fprintf(stderr, "%s: %s\n", s.key().c_str(), e.what());
    }
    if (!ok) {
      all_ok = false;
      const std::string cell = why.empty() ? "FAILED validation, not timed" : "unavailable, not timed";
      table_row({s.key(), std::to_string(s.uses), "all", cell});
      continue;
    }

    const double t_f = time_ms(dev, [&] { fwd(); }, warm, reps);
    const double t_d = time_ms(dev, [&] { bwd_d(); }, warm, reps);
    const double t_w = time_ms(dev, [&] { bwd_w(); }, warm, reps);
    const double ours[3] = {t_f, t_d, t_w};
    const char* dirs[3] = {"fwd", "bwd-data", "bwd-weight"};
    for (double t : ours) tot_ours += t * s.uses;
    if (a.cpu) {
      // 3x3/p1: every direction again with each path forced, validated before timing.
      // "ms" above is the default path (the rules, or DD_CPU_CONV3X3 when set).
      // [im2col, F(2x2), F(4x4)][fwd, bwd-data, bwd-weight]
      double forced[3][3] = {{NAN, NAN, NAN}, {NAN, NAN, NAN}, {NAN, NAN, NAN}};
      std::string runs[3] = {"im2col", "im2col", "im2col"};
      if (s.k == 3 && s.pad == 1) {
        using kernels::cpu::Conv3x3Algo;
        const Conv3x3Algo paths[3] = {Conv3x3Algo::Im2col, Conv3x3Algo::Winograd, Conv3x3Algo::Winograd4};
        for (int p = 0; p < 3; ++p) {
          kernels::cpu::Conv3x3AlgoScope force(paths[p]);
          kernels::Conv2dGrads g{bwd_d().dx, bwd_w().dw, Tensor()};
          if (!validate_cpu(s, in, fwd(), g)) {
            all_ok = false;
            continue;
          }
          forced[p][0] = time_ms(dev, [&] { fwd(); }, warm, reps);
          forced[p][1] = time_ms(dev, [&] { bwd_d(); }, warm, reps);
          forced[p][2] = time_ms(dev, [&] { bwd_w(); }, warm, reps);
        }
        const char* names[5] = {"im2col", "", "winograd", "", "winograd4"};
        runs[0] = names[kernels::cpu::use_winograd(B, s.h, s.w, s.ci, s.co)];
        runs[1] = names[kernels::cpu::use_winograd(B, s.h, s.w, s.co, s.ci)];
        runs[2] = names[kernels::cpu::use_winograd_dw(B, s.h, s.w, s.ci, s.co)];
      }
      for (int i = 0; i < 3; ++i)
        table_row({s.key(), std::to_string(s.uses), dirs[i], fmt(ours[i]), fmt(gflop / (ours[i] * 1e-3), 4),
                   fmt(forced[0][i]), fmt(forced[1][i]), fmt(forced[2][i]), runs[i]});
      continue;
    }
#ifdef DD_BENCH_CUDNN
    double ref[3], tf[3];
    std::string algos;
    for (int tf32 = 0; tf32 < 2; ++tf32) {
      double* out = tf32 ? tf : ref;
      if (!cudnn[tf32]) {  // failed its check above: not timed
        out[0] = out[1] = out[2] = NAN;
        continue;
      }
      CudnnConv& c = *cudnn[tf32];
      if (!tf32) algos = c.algos();
      Tensor y2 = Tensor::empty(in.dy.shape(), dev), dx2 = Tensor::empty(in.x.shape(), dev);
      Tensor dw2 = Tensor::empty(in.w.shape(), dev), db2 = s.bias ? Tensor::empty({s.co}, dev) : Tensor();
      out[0] = time_ms(dev, [&] { c.forward(in.x, in.w, in.bias, y2); }, warm, reps);
      out[1] = time_ms(dev, [&] { c.backward_data(in.w, in.dy, dx2); }, warm, reps);
      out[2] = time_ms(dev, [&] { c.backward_weight(in.x, in.dy, dw2, db2); }, warm, reps);
    }
    for (int i = 0; i < 3; ++i) {
      tot_ref += ref[i] * s.uses;  // NaN when cuDNN was not timed: the total then reads "-"
      table_row({s.key(), std::to_string(s.uses), dirs[i], fmt(ours[i]), fmt(gflop / (ours[i] * 1e-3) / 1e3),
                 fmt(ref[i]), fmt(gflop / (ref[i] * 1e-3) / 1e3), fmt(ours[i] / ref[i]), fmt(tf[i]), algos});
    }
#else
    for (int i = 0; i < 3; ++i)
      table_row({s.key(), std::to_string(s.uses), dirs[i], fmt(ours[i]), fmt(gflop / (ours[i] * 1e-3) / 1e3), "-",
                 "-", "-", "-", "built without cuDNN"});
#endif
  }
  if (fp32_table) {
    std::printf("\nAll convolutions of one forward + backward (each shape x uses, three directions): ours %s ms",
                fmt(tot_ours).c_str());
    if (tot_ref > 0) std::printf(", cuDNN fp32 %s ms, ratio %s", fmt(tot_ref).c_str(), fmt(tot_ours / tot_ref).c_str());
    std::printf(".%s\n", all_ok ? "" : " Some shapes were not timed (see above): the total leaves them out.");
  }
#ifdef DD_WITH_CUDA
  if (!a.cpu && sweep) {
    for (Precision p : {Precision::BF16, Precision::TF32})
      if (precision == "all" || precision == precision_name(p))
        all_ok &= tensor_core_sweep(p, shapes, B, warm, reps, only);
  } else if (!a.cpu) {
    if (precision == "all" || precision == "bf16") all_ok &= tensor_core_table(Precision::BF16, shapes, B, warm, reps);
    if (precision == "all" || precision == "tf32") all_ok &= tensor_core_table(Precision::TF32, shapes, B, warm, reps);
  }
#endif
  return all_ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_conv2d: %s\n", e.what());
  return 2;
}
