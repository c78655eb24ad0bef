// Convolution with a stride, per-side padding and a KH x KW kernel (kernels/conv2d.h, Conv2dGeometry),
// the geometries kernels/cuda/conv2d.cu does not cover (diffusers' Downsample2D, Inception-v3's
// rectangular kernels): correctness first.
// One shared-memory tiled GEMM kernel, C[m, n] = sum_k A(m, k) B(n, k), whose operands are
// gathered on the fly by small loaders (fp32 FMA, no TF32, as conv2d.cu):
//   forward  A = im2col(x) [B*Ho*Wo, KH*KW*Ci], B = w [Co, KH*KW*Ci]
//   dx       A = gathered dy [B*H*W, KH*KW*Co] (dy at ((ih+pt-kh)/s, (iw+pl-kw)/s) when exact, as the CPU),
//            B = w read as [Ci, (kh, kw, co)]
//   dw       A = dy^T [Co, pixels], B = im2col(x)^T [K*K*Ci, pixels]; the pixel reduction is split
//            over a fixed number of blocks (from the shapes alone) and folded in order
//   dbias    the same with B = 1 ([1, pixels])
// so every result repeats bitwise run to run.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
constexpr int kTile = 16;

struct SGeom {
  int b, h, w, ci, co, kh, kw, s, pt, pl, ho, wo;
};

struct XGather {  // im2col(x)[m, kk], m = (b, oh, ow), kk = (kh, kw, ci)
  const float* x;
  SGeom g;
  __device__ float operator()(int m, int kk) const {
    const int ow = m % g.wo, r = m / g.wo, oh = r % g.ho, b = r / g.ho;
    const int ci = kk % g.ci, t = kk / g.ci, kw = t % g.kw, kh = t / g.kw;
    const int ih = oh * g.s + kh - g.pt, iw = ow * g.s + kw - g.pl;
    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.0f;
    return x[((int64_t(b) * g.h + ih) * g.w + iw) * g.ci + ci];
  }
};
struct XGatherT {  // im2col(x)^T: [kk, m]
  XGather a;
  __device__ float operator()(int kk, int m) const { return a(m, kk); }
};
struct RowMajor {  // p[m * ld + k]
  const float* p;
  int ld;
  __device__ float operator()(int m, int k) const { return p[int64_t(m) * ld + k]; }
};
struct ColMajor {  // p[k * ld + m]
  const float* p;
  int ld;
  __device__ float operator()(int m, int k) const { return p[int64_t(k) * ld + m]; }
};
struct Ones {
  __device__ float operator()(int, int) const { return 1.0f; }
};
struct DyGather {  // dyg[q, j], q = (b, ih, iw), j = (kh, kw, co)
  const float* dy;
  SGeom g;
  __device__ float operator()(int q, int j) const {
    const int iw = q % g.w, r = q / g.w, ih = r % g.h, b = r / g.h;
    const int co = j % g.co, t = j / g.co, kw = t % g.kw, kh = t / g.kw;
    const int nh = ih + g.pt - kh, nw = iw + g.pl - kw;
    if (nh < 0 || nw < 0 || nh % g.s != 0 || nw % g.s != 0) return 0.0f;
    const int oh = nh / g.s, ow = nw / g.s;
    if (oh >= g.ho || ow >= g.wo) return 0.0f;
    return dy[((int64_t(b) * g.ho + oh) * g.wo + ow) * g.co + co];
  }
};
struct WTap {  // w read as [ci, (kh, kw, co)]: w[co, kh, kw, ci]
  const float* w;
  SGeom g;
  __device__ float operator()(int ci, int j) const {
    const int co = j % g.co, t = j / g.co;
    return w[(int64_t(co) * g.kh * g.kw + t) * g.ci + ci];
  }
};

// out[z, m, n] = sum over k in split z of A(m, k) B(n, k) (+ bias[n] when given, split 0 only).
template <class LA, class LB>
__global__ void __launch_bounds__(kTile* kTile)
    gemm_nt_kernel(LA a, LB b, const float* __restrict__ bias, float* __restrict__ out, int M, int N, int K,
                   int k_per_split) {
  __shared__ float As[kTile][kTile + 1];
  __shared__ float Bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int m0 = blockIdx.x * kTile, n0 = blockIdx.y * kTile;
  const int k_begin = blockIdx.z * k_per_split;
  const int k_end = static_cast<int>(min(int64_t(K), int64_t(k_begin) + k_per_split));
  float acc = 0.0f;
  for (int k0 = k_begin; k0 < k_end; k0 += kTile) {
    const int kk = k0 + tx;
    As[ty][tx] = (m0 + ty < M && kk < k_end) ? a(m0 + ty, kk) : 0.0f;
    Bs[ty][tx] = (n0 + ty < N && kk < k_end) ? b(n0 + ty, kk) : 0.0f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTile; ++k) acc = fmaf(As[ty][k], Bs[tx][k], acc);
    __syncthreads();
  }
  const int m = m0 + ty, n = n0 + tx;
  if (m < M && n < N) out[int64_t(blockIdx.z) * M * N + int64_t(m) * N + n] = acc + (bias ? bias[n] : 0.0f);
}

// out[i] = sum_{s < splits} partial[s * n + i], in s order (+ bias[i % N] when given).
__global__ void fold_kernel(const float* __restrict__ partial, int splits, int64_t n, const float* __restrict__ bias,
                            int N, float* __restrict__ out) {
  DD_GRID_STRIDE(i, n) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * n + i];
    out[i] = s + (bias ? bias[i % N] : 0.0f);
  }
}

int checked_int(int64_t v, const char* what) {
  DD_CHECK(v >= 0 && v <= INT_MAX - 2 * kTile, "conv2d strided (cuda): ", what, " = ", v,
           " does not fit the kernel's int indices");
  return static_cast<int>(v);
}

template <class LA, class LB>
void gemm(LA a, LB b, const float* bias, float* out, int M, int N, int K) {
  if (M == 0 || N == 0) return;
  // The reduction split: about 256 pixels per block, at most 64 splits (fixed by the shapes).
  const int64_t tiles = int64_t((M + kTile - 1) / kTile) * ((N + kTile - 1) / kTile);
  int64_t splits = 1;
  if (tiles < 256) splits = std::clamp<int64_t>(K / 256, 1, 64);
  const int64_t per = ((K + splits - 1) / splits + kTile - 1) / kTile * kTile;
  splits = std::max<int64_t>(1, (K + per - 1) / per);
  Tensor partial;
  float* dst = out;
  if (splits > 1) {
    partial = Tensor::empty({splits, M, N}, Device::CUDA);
    dst = partial.data();
  }
  const dim3 grid((M + kTile - 1) / kTile, (N + kTile - 1) / kTile, static_cast<unsigned>(splits));
  DD_CHECK(grid.y <= 65535, "conv2d strided (cuda): ", N, " columns exceed the grid");
  gemm_nt_kernel<LA, LB><<<grid, dim3(kTile, kTile), 0, stream()>>>(a, b, splits > 1 ? nullptr : bias, dst, M, N, K,
                                                             static_cast<int>(per));
  DD_CUDA_LAUNCH_CHECK("gemm_nt_kernel");
  if (splits > 1) {
    const int64_t n = int64_t(M) * N;
    fold_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dst, static_cast<int>(splits), n, bias, N, out);
    DD_CUDA_LAUNCH_CHECK("fold_kernel");
  }
}

SGeom make_geom(const Tensor& x, const Tensor& w, const Conv2dGeometry& geo) {
  SGeom g;
  g.b = checked_int(x.dim(0), "B");
  g.h = checked_int(x.dim(1), "H");
  g.w = checked_int(x.dim(2), "W");
  g.ci = checked_int(x.dim(3), "Ci");
  g.co = checked_int(w.dim(0), "Co");
  g.kh = checked_int(w.dim(1), "KH");
  g.kw = checked_int(w.dim(2), "KW");
  g.s = geo.stride;
  g.pt = geo.pad_top;
  g.pl = geo.pad_left;
  g.ho = (g.h + geo.pad_top + geo.pad_bottom - g.kh) / g.s + 1;
  g.wo = (g.w + geo.pad_left + geo.pad_right - g.kw) / g.s + 1;
  checked_int(int64_t(g.b) * g.h * g.w * std::max(g.ci, g.co), "B*H*W*C");
  return g;
}
}  // namespace

Tensor conv2d_strided_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo) {
  const SGeom g = make_geom(x, w, geo);
  Tensor y = Tensor::empty({g.b, g.ho, g.wo, g.co}, x.device());
  const int M = checked_int(int64_t(g.b) * g.ho * g.wo, "B*Ho*Wo");
  const int Kd = checked_int(int64_t(g.kh) * g.kw * g.ci, "KH*KW*Ci");
  gemm(XGather{x.data(), g}, RowMajor{w.data(), Kd}, bias.defined() ? bias.data() : nullptr, y.data(), M, g.co, Kd);
  return y;
}

Conv2dGrads conv2d_strided_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                                    bool need_dx, bool need_dw, bool need_dbias) {
  const SGeom g = make_geom(x, w, geo);
  const int P = checked_int(int64_t(g.b) * g.ho * g.wo, "B*Ho*Wo");
  const int Kd = checked_int(int64_t(g.kh) * g.kw * g.ci, "KH*KW*Ci");
  Conv2dGrads out;
  if (need_dbias) {
    out.dbias = Tensor::empty({g.co}, x.device());
    gemm(ColMajor{dy.data(), g.co}, Ones{}, nullptr, out.dbias.data(), g.co, 1, P);
  }
  if (need_dw) {
    out.dw = Tensor::empty(w.shape(), x.device());
    gemm(ColMajor{dy.data(), g.co}, XGatherT{XGather{x.data(), g}}, nullptr, out.dw.data(), g.co, Kd, P);
  }
  if (need_dx) {
    out.dx = Tensor::empty(x.shape(), x.device());
    const int Q = checked_int(int64_t(g.b) * g.h * g.w, "B*H*W");
    const int J = checked_int(int64_t(g.kh) * g.kw * g.co, "KH*KW*Co");
    gemm(DyGather{dy.data(), g}, WTap{w.data(), g}, nullptr, out.dx.data(), Q, g.ci, J);
  }
  return out;
}

}  // namespace dd::kernels::cuda
