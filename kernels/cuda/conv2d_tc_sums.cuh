#pragma once
// The GroupNorm statistics epilogue of the tensor-core forward convolution
// (conv_tc_fprop_kernel<..., kSums = true> in kernels/cuda/conv2d_tc.cu) and the fold of its partials:
// per-(image, channel) sums of y and y^2 in double, in a fixed order, so that
// cuda::group_norm_act_forward_sums need not read y again for them.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/conv2d_tc_tiles.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda::conv_tc {

// The sums of y[m, n] and y[m, n]^2 over the block tile's local rows r for which row_ok(r) holds
// (one image's), for the tile's columns n0 + col: out[col] and out[k_stride + col] (columns past N
// skipped). Each thread sums its own rows (mi, h order), the 8 lanes of a column pair are folded by
// a fixed xor tree, then the kWarpsM warps of a column in warp order through red (shared memory,
// [2][kWarpsM][Tile::BN] doubles). Every v is recomputed by the store's expression: the sums see
// y's bits. Ends with a barrier, so red may be reused at once.
template <class Tile, class RowOk>
__device__ __forceinline__ void tc_sums_rows(const float (&acc)[Tile::MI][Tile::NI][4], const float* __restrict__ bias,
                                             double* red, double* __restrict__ out, int64_t k_stride, int n0, int N,
                                             int wr, int wc, int tid, const RowOk& row_ok) {
  const int lane = tid % 32, gq = lane >> 2, tq = lane & 3, warp_m = tid / 32 / Tile::kWarpsN;
  // A column pair at a time: four live doubles beside acc, not 4 NI.
#pragma unroll
  for (int ni = 0; ni < Tile::NI; ++ni) {
    const int n = n0 + wc + 8 * ni + 2 * tq;
    double s[2] = {0.0, 0.0}, q[2] = {0.0, 0.0};
#pragma unroll
    for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (!row_ok(wr + 16 * mi + gq + 8 * h)) continue;
        const float v0 = acc[mi][ni][2 * h] + (bias && n < N ? bias[n] : 0.0f);
        const float v1 = acc[mi][ni][2 * h + 1] + (bias && n + 1 < N ? bias[n + 1] : 0.0f);
        // Exact in double (48-bit significands): only the additions round.
        s[0] += v0, q[0] += double(v0) * v0;
        s[1] += v1, q[1] += double(v1) * v1;
      }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int o = 4; o < 32; o <<= 1) {
        s[j] += warp::shfl_xor_sync(warp::kFullMask, s[j], o);
        q[j] += warp::shfl_xor_sync(warp::kFullMask, q[j], o);
      }
      if (gq == 0) {
        const int col = wc + 8 * ni + 2 * tq + j;
        red[warp_m * Tile::BN + col] = s[j];
        red[(Tile::kWarpsM + warp_m) * Tile::BN + col] = q[j];
      }
    }
  }
  __syncthreads();
  for (int i = tid; i < 2 * Tile::BN; i += Tile::kThreads) {
    const int k = i / Tile::BN, col = i - k * Tile::BN;
    if (n0 + col >= N) continue;
    double t = 0.0;
#pragma unroll
    for (int wm = 0; wm < Tile::kWarpsM; ++wm) t += red[(k * Tile::kWarpsM + wm) * Tile::BN + col];
    out[k * k_stride + col] = t;
  }
  __syncthreads();  // red is free again
}

// part[k][blockIdx.x][j][n] = sum of y[m, n] (k = 0) or y[m, n]^2 (k = 1) over this block's rows m
// of its j-th image (j < J), for the block tile at (m0, n0) whose accumulators are acc (the block's
// threads all call it, after their last stage; smem is the pipeline's shared memory, reused).
// A block's rows may span several images (16 pixels each at 4x4): one round per image.
template <class Tile>
__device__ __forceinline__ void tc_sums_epilogue(const float (&acc)[Tile::MI][Tile::NI][4], const float* __restrict__ bias,
                                                 unsigned char* smem, double* __restrict__ part, int J, int m0, int n0,
                                                 int M, int N, int hw, int wr, int wc, int tid) {
  __syncthreads();  // every warp is done with the last stage: the pipeline's memory is free
  double* const red = reinterpret_cast<double*>(smem);  // [2][kWarpsM][Tile::BN]
  const int m_end = min(m0 + Tile::BM, M), b_first = m0 / hw, b_last = (m_end - 1) / hw;
  for (int b = b_first; b <= b_last; ++b) {
    const int lo = max(m0, b * hw), hi = min(m_end, (b + 1) * hw);
    tc_sums_rows<Tile>(acc, bias, red, part + (int64_t(blockIdx.x) * J + (b - b_first)) * N + n0,
                       int64_t(gridDim.x) * J * N, n0, N, wr, wc, tid,
                       [&](int r) { return m0 + r >= lo && m0 + r < hi; });
  }
}

// sums[k][b][n] = sum over the row blocks rb that hold pixels of image b, in rb order, of
// part[k][rb][b - first image of rb][n]. Double partials, not fp32 ones folded in double: GroupNorm's
// variance q/n - mean^2 cancels where |mean| >> std, magnifying any rounding of q, and fp32
// partials of up to 128 terms would each round ~2^-24 (128 x 2^-24 worst case); in double every
// y and y^2 enters exactly and the sums stay within ~pixels x 2^-53 of exact, as channel_sums'
// do. The H200's fp64 rate (half of fp32) keeps the epilogue's two adds per element cheap.
static __global__ void fold_tc_sums_kernel(const double* __restrict__ part, int B, int N, int hw, int BM, int blocks,
                                           int J, double* __restrict__ sums) {
  const int64_t bn = int64_t(B) * N;
  DD_GRID_STRIDE(i, 2 * bn) {
    const int k = static_cast<int>(i / bn), b = static_cast<int>(i % bn / N), n = static_cast<int>(i % N);
    const int64_t first = int64_t(b) * hw, last = first + hw - 1;
    double s = 0.0;
    for (int64_t rb = first / BM; rb <= last / BM; ++rb)
      s += part[((int64_t(k) * blocks + rb) * J + (b - rb * BM / hw)) * N + n];
    sums[i] = s;
  }
}

// The halo kernel's: sums[k][b][n] = sum over image b's T patches' blocks (blockIdx.x = b T + t),
// in t order, of part[k][b T + t][n].
static __global__ void fold_halo_sums_kernel(const double* __restrict__ part, int B, int N, int T,
                                             double* __restrict__ sums) {
  const int64_t bn = int64_t(B) * N, blocks = int64_t(B) * T;
  DD_GRID_STRIDE(i, 2 * bn) {
    const int64_t k = i / bn, b = i % bn / N, n = i % N;
    double s = 0.0;
    for (int64_t t = 0; t < T; ++t) s += part[(k * blocks + b * T + t) * N + n];
    sums[i] = s;
  }
}

}  // namespace dd::kernels::cuda::conv_tc
