// Convolution as implicit GEMMs (no cuDNN, no TF32: fp32 FMA to match the CPU). Under a TF32 or
// BF16 Context precision the entry points hand over to the tensor-core kernels (conv2d_tc.cu).
//
//   forward  y[m, n]  = sum_kk A[m, kk] w[n, kk] + bias[n]   M = B*Ho*Wo, N = Co, Kd = K*K*Ci
//   dx       the same kernel on dy with the flipped, channel-transposed weight
//            wt[ci, kh, kw, co] = w[co, K-1-kh, K-1-kw, ci] and padding K-1-p (as the CPU)
//   dw[co, kk] = sum_m dy[m, co] A[m, kk]                    reduction over m, split over blocks
//   dbias[co]  = sum_m dy[m, co]
// A[m, kk] is the im2col matrix, gathered from x on the fly (conv2d_tiles.cuh).
// The reductions that span blocks (dw over m, dbias) write per-split partials and
// fold them in a fixed order in a second kernel: results are bitwise reproducible.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d_tiles.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
using conv::Geom;
using conv::kBK;
using conv::kBM;
using conv::kBN;
using conv::kPad;
using conv::kTileThreads;

// y[M, N] = im2col(x)[M, Kd] w[N, Kd]^T (+ bias). kPlain: a 1x1 conv without
// padding, where im2col(x) is x itself ([M, Ci] row-major) and needs no gather.
// kVec (Ci % 4 == 0): every 4-aligned run of kk is 4 consecutive channels of one
// tap, 16-byte aligned in x and in w, so it is fetched as one float4.
//
// Loads: each thread fetches kPer = 1 or 4 consecutive k of every
// kRowStride-th row of both operand tiles, so consecutive threads read
// consecutive k of one row (contiguous in x's channels and in w's OHWI rows).
// The next tile's loads are issued into registers before the current tile's
// products, hiding their latency.
template <bool kPlain, bool kVec>
__global__ void __launch_bounds__(kTileThreads)
    conv_fwd_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                    float* __restrict__ y, Geom g, int M, int N, int Kd) {
  constexpr int kPer = kVec ? 4 : 1;
  constexpr int kThreadsPerRow = kBK / kPer;
  constexpr int kRowStride = kTileThreads / kThreadsPerRow;
  constexpr int kRows = kBM / kRowStride;
  static_assert(kBM == kBN && kRows * kRowStride == kBM, "one loader mapping for both operands");
  __shared__ __align__(16) float As[kBK][kBM + kPad];
  __shared__ __align__(16) float Bs[kBK][kBN + kPad];
  const int tid = threadIdx.x, lk = (tid % kThreadsPerRow) * kPer, lr = tid / kThreadsPerRow;
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBN;

  conv::PixelBase pb[kRows];
  bool m_ok[kRows], n_ok[kRows];
  int64_t w_row[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    const int m = m0 + lr + kRowStride * i, n = n0 + lr + kRowStride * i;
    m_ok[i] = m < M;
    n_ok[i] = n < N;
    if (kPlain)
      pb[i] = {int64_t(m) * Kd, 0, 0};
    else
      pb[i] = conv::pixel_base(g, m_ok[i] ? m : 0);
    w_row[i] = int64_t(n) * Kd;
  }

  float ra[kRows][kPer], rb[kRows][kPer];
  auto load = [&](int k0) {
    const int kk = k0 + lk;
    const bool k_ok = kk < Kd;  // with kVec, Kd % 4 == 0: kk + 3 < Kd as well
    conv::Tap t{0, 0, 0};
    if (!kPlain && k_ok) t = conv::tap_of(g, kk);
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      if (kVec) {
        float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b = a;
        if (m_ok[i] && k_ok) {
          const int64_t off = kPlain ? pb[i].image + kk : conv::gather_offset(g, pb[i], t);
          if (off >= 0) a = *reinterpret_cast<const float4*>(x + off);
        }
        if (n_ok[i] && k_ok) b = *reinterpret_cast<const float4*>(w + w_row[i] + kk);
        ra[i][0] = a.x, ra[i][1] = a.y, ra[i][2] = a.z, ra[i][3] = a.w;
        rb[i][0] = b.x, rb[i][1] = b.y, rb[i][2] = b.z, rb[i][3] = b.w;
      } else {
        if (kPlain)
          ra[i][0] = m_ok[i] && k_ok ? x[pb[i].image + kk] : 0.0f;
        else
          ra[i][0] = m_ok[i] && k_ok ? conv::gather(x, g, pb[i], t) : 0.0f;
        rb[i][0] = n_ok[i] && k_ok ? w[w_row[i] + kk] : 0.0f;
      }
    }
  };
  auto store = [&]() {
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        As[lk + j][lr + kRowStride * i] = ra[i][j];
        Bs[lk + j][lr + kRowStride * i] = rb[i][j];
      }
  };

  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  load(0);
  store();
  __syncthreads();
  for (int k0 = 0; k0 < Kd; k0 += kBK) {
    const bool more = k0 + kBK < Kd;  // uniform over the block
    if (more) load(k0 + kBK);
    conv::tile_product(As, Bs, ty, tx, acc);
    __syncthreads();
    if (more) store();
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx * 4 + j;
      if (n < N) y[int64_t(m) * N + n] = acc[i][j] + (bias ? bias[n] : 0.0f);
    }
  }
}

// out[s, co, kk] = sum over pixels m of split s of dy[m, co] im2col(x)[m, kk].
// GEMM rows are co, columns kk, the reduction runs over m: both operands are
// contiguous along their GEMM row/column for a fixed m, so each thread keeps
// kPer = 1 or 4 consecutive columns (co of dy, kk of the gather, decomposed
// once) and fetches every kRowStride-th pixel of the 16-pixel step: warps read
// consecutive floats and store into shared memory without transposition.
// kVec (Ci % 4 == 0 and Co % 4 == 0): the kPer = 4 columns are one float4 of dy
// and one of x (4 channels of one tap).
template <bool kPlain, bool kVec>
__global__ void __launch_bounds__(kTileThreads)
    conv_wgrad_kernel(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out, Geom g,
                      int M, int Co, int Kd, int pixels_per_split) {
  constexpr int kPer = kVec ? 4 : 1;
  constexpr int kThreadsPerRow = kBM / kPer;
  constexpr int kRowStride = kTileThreads / kThreadsPerRow;
  constexpr int kRows = kBK / kRowStride;
  static_assert(kBM == kBN && kRows * kRowStride == kBK, "one loader mapping for both operands");
  __shared__ __align__(16) float As[kBK][kBM + kPad];
  __shared__ __align__(16) float Bs[kBK][kBN + kPad];
  const int tid = threadIdx.x, lc = (tid % kThreadsPerRow) * kPer, lr = tid / kThreadsPerRow;
  const int kk0 = blockIdx.x * kBN, co0 = blockIdx.y * kBM, split = blockIdx.z;
  const int m_begin = split * pixels_per_split;  // < M: the host leaves no split empty
  const int m_end = static_cast<int>(min(int64_t(M), int64_t(m_begin) + pixels_per_split));

  // With kVec, Co % 4 == 0 and Kd % 4 == 0: co < Co implies co + 3 < Co, and so for kk.
  const int co = co0 + lc, kk = kk0 + lc;
  const bool co_ok = co < Co, kk_ok = kk < Kd;
  const conv::Tap t = !kPlain && kk_ok ? conv::tap_of(g, kk) : conv::Tap{0, 0, 0};

  // Pixel mb + lr + kRowStride i of the next load(mb): loads run in order, kBK apart.
  conv::PixelCursor cur[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i)
    cur[i] = kPlain ? conv::PixelCursor{0, 0, 0} : conv::pixel_cursor(g, m_begin + lr + kRowStride * i);

  float ra[kRows][kPer], rb[kRows][kPer];
  auto load = [&](int mb) {
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int m = mb + lr + kRowStride * i;
      const bool m_ok = m < m_end;
      int64_t x_off = -1;  // -1: nothing to read (outside the split, the tile or the image)
      if (m_ok && kk_ok) x_off = kPlain ? int64_t(m) * Kd + kk : conv::gather_offset(g, cur[i].base(g), t);
      if (!kPlain) cur[i].advance(g, kBK);
      if (kVec) {
        float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b = a;
        if (m_ok && co_ok) a = *reinterpret_cast<const float4*>(dy + int64_t(m) * Co + co);
        if (x_off >= 0) b = *reinterpret_cast<const float4*>(x + x_off);
        ra[i][0] = a.x, ra[i][1] = a.y, ra[i][2] = a.z, ra[i][3] = a.w;
        rb[i][0] = b.x, rb[i][1] = b.y, rb[i][2] = b.z, rb[i][3] = b.w;
      } else {
        ra[i][0] = m_ok && co_ok ? dy[int64_t(m) * Co + co] : 0.0f;
        rb[i][0] = x_off >= 0 ? x[x_off] : 0.0f;
      }
    }
  };
  auto store = [&]() {
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int r = lr + kRowStride * i;
      if (kVec) {  // one 16-byte store each: no bank conflicts
        *reinterpret_cast<float4*>(&As[r][lc]) = make_float4(ra[i][0], ra[i][1], ra[i][2], ra[i][3]);
        *reinterpret_cast<float4*>(&Bs[r][lc]) = make_float4(rb[i][0], rb[i][1], rb[i][2], rb[i][3]);
      } else {
        As[r][lc] = ra[i][0];
        Bs[r][lc] = rb[i][0];
      }
    }
  };

  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  load(m_begin);
  store();
  __syncthreads();
  for (int mb = m_begin; mb < m_end; mb += kBK) {
    const bool more = mb + kBK < m_end;  // uniform over the block
    if (more) load(mb + kBK);
    conv::tile_product(As, Bs, ty, tx, acc);
    __syncthreads();
    if (more) store();
    __syncthreads();
  }

  float* dst = out + int64_t(split) * Co * Kd;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = co0 + ty * 4 + i;
    if (r >= Co) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = kk0 + tx * 4 + j;
      if (c < Kd) dst[int64_t(r) * Kd + c] = acc[i][j];
    }
  }
}

// out[i] = sum_{s < splits} partial[s * n + i], in s order.
__global__ void fold_splits_kernel(const float* __restrict__ partial, int splits, int64_t n, float* __restrict__ out) {
  DD_GRID_STRIDE(i, n) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * n + i];
    out[i] = s;
  }
}

// dbias pass 1: block (32 columns, 8 lanes) sums rows [r0, r1) of its split for
// 32 channels in double (as the CPU's column sums); lanes are folded in order.
constexpr int kBiasCols = 32, kBiasLanes = 8;

__global__ void bias_partial_kernel(const float* __restrict__ dy, int M, int Co, int rows_per_split,
                                    float* __restrict__ partial) {
  __shared__ double buf[kBiasLanes][kBiasCols];
  const int cx = threadIdx.x, ly = threadIdx.y;
  const int co = blockIdx.x * kBiasCols + cx, split = blockIdx.y;
  const int r0 = split * rows_per_split, r1 = min(M, r0 + rows_per_split);
  double s = 0.0;
  if (co < Co)
    for (int m = r0 + ly; m < r1; m += kBiasLanes) s += dy[int64_t(m) * Co + co];
  buf[ly][cx] = s;
  __syncthreads();
  if (ly == 0 && co < Co) {
    double t = 0.0;
    for (int l = 0; l < kBiasLanes; ++l) t += buf[l][cx];
    partial[int64_t(split) * Co + co] = static_cast<float>(t);
  }
}

__global__ void bias_fold_kernel(const float* __restrict__ partial, int splits, int Co, float* __restrict__ out) {
  DD_GRID_STRIDE(co, Co) {
    double s = 0.0;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * Co + co];
    out[co] = static_cast<float>(s);
  }
}

// wt[ci, kh, kw, co] = w[co, K-1-kh, K-1-kw, ci]
__global__ void flip_transpose_kernel(const float* __restrict__ w, int co_n, int k, int ci_n, float* __restrict__ wt) {
  const int64_t n = int64_t(co_n) * k * k * ci_n;
  DD_GRID_STRIDE(i, n) {
    const int co = static_cast<int>(i % co_n);
    int64_t r = i / co_n;
    const int kw = static_cast<int>(r % k);
    r /= k;
    const int kh = static_cast<int>(r % k);
    const int ci = static_cast<int>(r / k);
    wt[i] = w[((int64_t(co) * k + (k - 1 - kh)) * k + (k - 1 - kw)) * ci_n + ci];
  }
}

int checked_int(int64_t v, const char* what) {
  DD_CHECK(v >= 0 && v <= INT_MAX - 2 * kBM, "conv2d (cuda): ", what, " = ", v, " does not fit the kernels' int indices");
  return static_cast<int>(v);
}

// y [M, N] for the conv of x (geometry g, Ci = g.c) with w [N, K, K, Ci].
void launch_forward(const float* x, const Geom& g, const float* w, int N, const float* bias, float* y) {
  const int M = checked_int(int64_t(g.b) * g.ho * g.wo, "B*Ho*Wo");
  const int Kd = checked_int(int64_t(g.k) * g.k * g.c, "K*K*Ci");
  const dim3 grid((M + kBM - 1) / kBM, (N + kBN - 1) / kBN);
  DD_CHECK(grid.y <= 65535, "conv2d (cuda): ", N, " output channels exceed the grid");
  // Tensors start at their (cudaMalloc-aligned) allocation today; checked anyway, as
  // a misaligned float4 load would fault.
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  const bool plain = g.k == 1 && g.p == 0, vec = g.c % 4 == 0 && aligned;
  if (plain && vec)
    conv_fwd_kernel<true, true><<<grid, kTileThreads, 0, stream()>>>(x, w, bias, y, g, M, N, Kd);
  else if (plain)
    conv_fwd_kernel<true, false><<<grid, kTileThreads, 0, stream()>>>(x, w, bias, y, g, M, N, Kd);
  else if (vec)
    conv_fwd_kernel<false, true><<<grid, kTileThreads, 0, stream()>>>(x, w, bias, y, g, M, N, Kd);
  else
    conv_fwd_kernel<false, false><<<grid, kTileThreads, 0, stream()>>>(x, w, bias, y, g, M, N, Kd);
  DD_CUDA_LAUNCH_CHECK("conv_fwd_kernel");
}

// About four waves of 132 SMs; a constant (not the device's SM count) so the
// split, and with it every bit of dw, is the same on any GPU.
constexpr int64_t kTargetBlocks = 4 * 132;
constexpr int64_t kMinStepsPerSplit = 8;  // 128 pixels: amortises the tile's epilogue

void weight_grad(const float* x, const Geom& g, const float* dy, int Co, float* dw) {
  const int M = checked_int(int64_t(g.b) * g.ho * g.wo, "B*Ho*Wo");
  const int Kd = checked_int(int64_t(g.k) * g.k * g.c, "K*K*Ci");
  const int64_t tiles = int64_t((Kd + kBN - 1) / kBN) * ((Co + kBM - 1) / kBM);
  const int64_t steps = (M + kBK - 1) / kBK;
  int64_t splits = std::min((kTargetBlocks + tiles - 1) / tiles, std::max<int64_t>(1, steps / kMinStepsPerSplit));
  splits = std::clamp<int64_t>(splits, 1, 65535);
  const int64_t steps_per_split = (steps + splits - 1) / splits;
  splits = (steps + steps_per_split - 1) / steps_per_split;  // no empty split
  const int pixels_per_split = static_cast<int>(steps_per_split * kBK);

  Tensor partial;
  float* out = dw;
  if (splits > 1) {
    partial = Tensor::empty({splits, Co, Kd}, Device::CUDA);
    out = partial.data();
  }
  const dim3 grid((Kd + kBN - 1) / kBN, (Co + kBM - 1) / kBM, static_cast<unsigned>(splits));
  DD_CHECK(grid.y <= 65535, "conv2d_backward (cuda): ", Co, " output channels exceed the grid");
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(dy) % 16 == 0;
  const bool plain = g.k == 1 && g.p == 0, vec = g.c % 4 == 0 && Co % 4 == 0 && aligned;
  if (plain && vec)
    conv_wgrad_kernel<true, true><<<grid, kTileThreads, 0, stream()>>>(x, dy, out, g, M, Co, Kd, pixels_per_split);
  else if (plain)
    conv_wgrad_kernel<true, false><<<grid, kTileThreads, 0, stream()>>>(x, dy, out, g, M, Co, Kd, pixels_per_split);
  else if (vec)
    conv_wgrad_kernel<false, true><<<grid, kTileThreads, 0, stream()>>>(x, dy, out, g, M, Co, Kd, pixels_per_split);
  else
    conv_wgrad_kernel<false, false><<<grid, kTileThreads, 0, stream()>>>(x, dy, out, g, M, Co, Kd, pixels_per_split);
  DD_CUDA_LAUNCH_CHECK("conv_wgrad_kernel");
  if (splits > 1) {
    const int64_t n = int64_t(Co) * Kd;
    fold_splits_kernel<<<grid_for(n), kThreads, 0, stream()>>>(out, static_cast<int>(splits), n, dw);
    DD_CUDA_LAUNCH_CHECK("fold_splits_kernel");
  }
}

constexpr int64_t kBiasMinRows = 256;  // rows per split, as the CPU's column-sum blocks
constexpr int64_t kBiasMaxSplits = 512;

void bias_grad(const float* dy, int M, int Co, float* dbias) {
  const int64_t splits = std::min(kBiasMaxSplits, (M + kBiasMinRows - 1) / kBiasMinRows);
  const int rows_per_split = static_cast<int>((M + splits - 1) / splits);
  Tensor partial = Tensor::empty({splits, Co}, Device::CUDA);
  const dim3 grid((Co + kBiasCols - 1) / kBiasCols, static_cast<unsigned>(splits));
  bias_partial_kernel<<<grid, dim3(kBiasCols, kBiasLanes), 0, stream()>>>(dy, M, Co, rows_per_split,
                                                                         partial.data());
  DD_CUDA_LAUNCH_CHECK("bias_partial_kernel");
  bias_fold_kernel<<<grid_for(Co), kThreads, 0, stream()>>>(partial.data(), static_cast<int>(splits), Co, dbias);
  DD_CUDA_LAUNCH_CHECK("bias_fold_kernel");
}

Geom input_geom(const Tensor& x, int64_t k, int64_t p) {
  Geom g;
  g.b = checked_int(x.dim(0), "B");
  g.h = checked_int(x.dim(1), "H");
  g.w = checked_int(x.dim(2), "W");
  g.c = checked_int(x.dim(3), "C");
  g.k = checked_int(k, "K");
  g.p = static_cast<int>(p);
  g.ho = static_cast<int>(g.h + 2 * p - k + 1);
  g.wo = static_cast<int>(g.w + 2 * p - k + 1);
  return g;
}
}  // namespace

Tensor conv2d_bias_grad(const Tensor& dy) {
  const int co = checked_int(dy.dim(dy.ndim() - 1), "Co");
  Tensor dbias = Tensor::empty({co}, dy.device());
  bias_grad(dy.data(), checked_int(dy.numel() / co, "B*Ho*Wo"), co, dbias.data());
  return dbias;
}

// x and w may be bf16 (a conv input, or a Block's standardised weight, that the tape keeps in bf16
// under BF16): the tensor-core path reads them as its operands; the fp32 kernels read their values
// widened.
Tensor conv2d_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, int padding) {
  const Precision prec = current_context().precision();
  if (prec != Precision::FP32) return conv2d_forward_tc(x_in, w_in, bias, padding, prec);
  const Tensor x = x_in.to(DType::F32), w = w_in.to(DType::F32);
  const Geom g = input_geom(x, w.dim(1), padding);
  const int co = checked_int(w.dim(0), "Co");
  Tensor y = Tensor::empty({g.b, g.ho, g.wo, co}, x.device());
  launch_forward(x.data(), g, w.data(), co, bias.defined() ? bias.data() : nullptr, y.data());
  return y;
}

Tensor conv2d_forward_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  const Precision prec = current_context().precision();
  if (prec != Precision::FP32) return conv2d_forward_tc_bf16(x, w, bias, padding, prec);
  return conv2d_forward(x, w, bias, padding).to(DType::BF16);
}

Conv2dGrads conv2d_backward(const Tensor& x_in, const Tensor& w_in, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias) {
  const Precision prec = current_context().precision();
  if (prec != Precision::FP32) return conv2d_backward_tc(x_in, w_in, dy, padding, need_dx, need_dw, need_dbias, prec);
  const Tensor x = need_dw ? x_in.to(DType::F32) : x_in;  // dx reads only its shape
  const Tensor w = need_dx ? w_in.to(DType::F32) : w_in;  // dw only its shape
  const Geom g = input_geom(x, w.dim(1), padding);
  const int co = checked_int(w.dim(0), "Co");
  Conv2dGrads out;
  if (need_dbias) out.dbias = conv2d_bias_grad(dy);
  if (need_dw) {
    out.dw = Tensor::empty(w.shape(), x.device());
    weight_grad(x.data(), g, dy.data(), co, out.dw.data());
  }
  if (need_dx) {
    Tensor wt = Tensor::empty({g.c, g.k, g.k, co}, x.device());
    flip_transpose_kernel<<<grid_for(w.numel()), kThreads, 0, stream()>>>(w.data(), co, g.k, g.c, wt.data());
    DD_CUDA_LAUNCH_CHECK("flip_transpose_kernel");
    // dy as the input of a conv with Ci outputs, padding K-1-p: its output is H x W.
    const Geom gd{g.b, g.ho, g.wo, co, g.k, g.k - 1 - g.p, g.h, g.w};
    out.dx = Tensor::empty(x.shape(), x.device());
    launch_forward(dy.data(), gd, wt.data(), g.c, nullptr, out.dx.data());
  }
  return out;
}

}  // namespace dd::kernels::cuda
