// Test kernels for kernels/cuda/warp_ops.cuh; see tests/emu/warp_kernels.h.
// Each builds its fragments or addresses the way a tensor-core kernel would,
// from the layouts written at the top of warp_ops.cuh, so a wrong layout in
// either place shows up as a wrong answer.
#include "tests/emu/warp_kernels.h"

#include <stdexcept>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "kernels/cuda/warp_ops.cuh"

namespace dd::warp_test::cuda {

namespace {

using namespace ::dd::kernels::cuda::warp;

__device__ __forceinline__ uint32_t pack(uint16_t lo, uint16_t hi) { return uint32_t(lo) | uint32_t(hi) << 16; }
__device__ __forceinline__ void swap_u32(uint32_t& a, uint32_t& b) {
  const uint32_t t = a;
  a = b;
  b = t;
}

// ---- mma from fragments built in registers ---------------------------------

__global__ void mma_m16n8k16_kernel(bool f16, const uint16_t* A, const uint16_t* B, const float* C, float* D, Bug bug) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  uint32_t a[4] = {pack(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]),
                   pack(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                   pack(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                   pack(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
  uint32_t b[2] = {pack(B[2 * t * 8 + g], B[(2 * t + 1) * 8 + g]),
                   pack(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
  if (bug == Bug::SwappedARegisters) swap_u32(a[1], a[2]);
  if (bug == Bug::TransposedBFragment) {
    b[0] = pack(B[g * 8 + 2 * t], B[g * 8 + 2 * t + 1]);
    b[1] = pack(B[(g + 8) * 8 + 2 * t], B[(g + 8) * 8 + 2 * t + 1]);
  }
  const float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  if (bug == Bug::LaneSkipsMma && lane == 5) return;
  float d[4];
  if (f16)
    mma_m16n8k16_f16(d, a, b, c);
  else
    mma_m16n8k16_bf16(d, a, b, c);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

__global__ void mma_tf32_kernel(const float* A, const float* B, const float* C, float* D, Bug bug) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  uint32_t a[4] = {f32_to_tf32(A[g * 8 + t]), f32_to_tf32(A[(g + 8) * 8 + t]), f32_to_tf32(A[g * 8 + t + 4]),
                   f32_to_tf32(A[(g + 8) * 8 + t + 4])};
  uint32_t b[2] = {f32_to_tf32(B[t * 8 + g]), f32_to_tf32(B[(t + 4) * 8 + g])};
  if (bug == Bug::SwappedARegisters) swap_u32(a[1], a[2]);
  if (bug == Bug::TransposedBFragment) {
    b[0] = f32_to_tf32(B[g * 8 + t]);
    b[1] = f32_to_tf32(B[g * 8 + t + 4]);
  }
  const float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  float d[4];
  mma_m16n8k8_tf32(d, a, b, c);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// ---- ldmatrix ------------------------------------------------------------------

constexpr int kLdStride = 24;  // padded row: 48 bytes, still 16-byte aligned

__global__ void ldmatrix_kernel(const uint16_t* tile, int num, bool trans, uint32_t* out, Bug bug) {
  // 4 spare elements: the array does not end on a 16-byte boundary, so a row
  // that starts 8 bytes before its end is aligned and overruns it.
  __shared__ __align__(16) uint16_t tile_s[16 * kLdStride + 4];
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) tile_s[(i / 16) * kLdStride + i % 16] = tile[i];
  __syncthreads();
  const int m = lane / 8, r = lane % 8;  // matrix m: rows 8 (m % 2).., columns 8 (m / 2)..
  const uint16_t* row = &tile_s[(8 * (m % 2) + r) * kLdStride + 8 * (m / 2)];
  if (bug == Bug::MisalignedRow) row += 1;
  if (bug == Bug::RowInGlobalMemory && lane == 3) row = tile + 16 * 3;
  if (bug == Bug::RowPastArrayEnd && lane == 8 * num - 1) row = &tile_s[16 * kLdStride];
  uint32_t r4[4] = {0, 0, 0, 0};
  uint32_t r2[2] = {0, 0};
  if (num == 1 && !trans) ldmatrix_x1(r4[0], row);
  if (num == 1 && trans) ldmatrix_x1_trans(r4[0], row);
  if (num == 2 && !trans) ldmatrix_x2(r2, row);
  if (num == 2 && trans) ldmatrix_x2_trans(r2, row);
  if (num == 4 && !trans) ldmatrix_x4(r4, row);
  if (num == 4 && trans) ldmatrix_x4_trans(r4, row);
  if (num == 2) r4[0] = r2[0], r4[1] = r2[1];
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r4[i];
}

constexpr int kAStride = 40, kBStride = 24;  // padded rows of the 32x32 A and 32x16 B tiles
constexpr int kLdmmaSmem = (32 * kAStride + 32 * kBStride) * 2;

__global__ void ldmatrix_mma_kernel(bool f16, const uint16_t* A, const uint16_t* B, const float* C, float* D,
                                    Bug bug) {
  extern __shared__ __align__(16) unsigned char smem[];
  uint16_t* As = reinterpret_cast<uint16_t*>(smem);
  uint16_t* Bs = As + 32 * kAStride;
  const int tid = threadIdx.x;
  for (int c = tid; c < 128; c += 64) cp_async_16(&As[(c / 4) * kAStride + (c % 4) * 8], &A[(c / 4) * 32 + (c % 4) * 8]);
  for (int c = tid; c < 64; c += 64) cp_async_16(&Bs[(c / 2) * kBStride + (c % 2) * 8], &B[(c / 2) * 16 + (c % 2) * 8]);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  const int warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
  const int r0 = 16 * warp + g, r1 = r0 + 8;
  for (int nt = 0; nt < 2; ++nt) {
    const int c0 = 8 * nt + 2 * t;
    float acc[4] = {C[r0 * 16 + c0], C[r0 * 16 + c0 + 1], C[r1 * 16 + c0], C[r1 * 16 + c0 + 1]};
    for (int kt = 0; kt < 2; ++kt) {
      uint32_t a[4], b[2];
      ldmatrix_x4(a, &As[(16 * warp + lane % 16) * kAStride + 16 * kt + 8 * (lane / 16)]);
      const uint16_t* brow = &Bs[(16 * kt + lane % 16) * kBStride + 8 * nt];
      if (bug == Bug::NoTransB)
        ldmatrix_x2(b, brow);
      else
        ldmatrix_x2_trans(b, brow);
      if (f16)
        mma_m16n8k16_f16(acc, a, b, acc);
      else
        mma_m16n8k16_bf16(acc, a, b, acc);
    }
    D[r0 * 16 + c0] = acc[0];
    D[r0 * 16 + c0 + 1] = acc[1];
    D[r1 * 16 + c0] = acc[2];
    D[r1 * 16 + c0 + 1] = acc[3];
  }
}

// ---- cp.async -------------------------------------------------------------------

template <int S>
__global__ void pipeline_kernel(const float* src, int tiles, float* out, Bug bug) {
  __shared__ __align__(16) float buf[S][128];
  const int tid = threadIdx.x;  // 32 threads, 16 bytes each per tile
  for (int s = 0; s < S - 1; ++s) {
    if (s < tiles) cp_async_16(&buf[s][4 * tid], src + 128 * s + 4 * tid);
    cp_async_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    // Tile t's group is the oldest pending one; the S - 2 newer ones may stay in flight.
    if (bug == Bug::WaitTooLoose)
      cp_async_wait<S - 1>();
    else if (bug != Bug::NoWait)
      cp_async_wait<S - 2>();
    __syncthreads();  // every thread's part of tile t landed; tile t - 1's stage is free
    const int next = t + S - 1;
    if (next < tiles) cp_async_16(&buf[next % S][4 * tid], src + 128 * next + 4 * tid);
    cp_async_commit();  // possibly empty: keeps one group per tile
    const float* st = buf[t % S];
    for (int j = 0; j < 4; ++j) {
      const int e = 4 * tid + j;
      out[128 * t + e] = 2.0f * st[(e + 37) % 128] + float(t);
    }
  }
}

constexpr int kHaloOut = 64, kHaloChunks = (kHaloOut + 8) / 4;  // 4 floats of halo each side

__global__ void halo_kernel(const float* x, int n, float* out, Bug bug) {
  __shared__ __align__(16) float win[kHaloOut + 8];  // win[k] = x[start - 4 + k]
  const int start = blockIdx.x * kHaloOut, tid = threadIdx.x;
  for (int c = tid; c < kHaloChunks; c += blockDim.x) {
    const int first = start - 4 + 4 * c;  // a multiple of 4: chunks are 16-byte aligned
    const int valid = first < 0 ? 0 : (n - first < 0 ? 0 : (n - first > 4 ? 4 : n - first));
    const float* src = x + (valid > 0 ? first : 0);  // not read when valid == 0
    if (bug == Bug::ClampedHalo && valid == 0)
      cp_async_16(&win[4 * c], x + (first < 0 ? 0 : 4 * (n / 4 - 1)));
    else if (valid == 0 || valid == 4)
      cp_async_16_pred(&win[4 * c], src, valid == 4);
    else
      cp_async_16_zfill(&win[4 * c], src, 4 * valid);
  }
  cp_async_wait_all();
  __syncthreads();
  for (int i = tid; i < kHaloOut; i += blockDim.x)
    if (start + i < n) out[start + i] = win[i + 3] + win[i + 4] + win[i + 5];
}

// ---- shuffles and votes -----------------------------------------------------------

__global__ void shuffles_kernel(const float* x, float* out, uint32_t* bits, Bug bug) {
  const int tid = threadIdx.x, lane = tid % 32, w = tid / 32;
  const float v = x[tid];
  float* o = out + 7 * tid;
  if (bug == Bug::LaneReturnsEarly && lane == 31) return;
  if (bug == Bug::LaneAtBarrier && lane == 7) __syncthreads();
  float s = v;
  for (int off = 16; off > 0; off /= 2) {
    if (bug == Bug::LaneSkipsShuffle && lane == 7 && off == 4) break;
    s += shfl_xor_sync(kFullMask, s, off);
  }
  o[0] = s;
  const unsigned down_mask = bug == Bug::MaskWithoutSelf && lane == 0 ? 0xFFFFFFFEu : kFullMask;
  float d = v;
  for (int off = 16; off > 0; off /= 2) d += shfl_down_sync(down_mask, d, off);
  o[1] = d;
  float scan = v;
  for (int off = 1; off < 32; off *= 2) {
    float up;
    if (bug == Bug::SplitCallSites && lane >= 16)
      up = shfl_up_sync(kFullMask, scan, off);
    else
      up = shfl_up_sync(kFullMask, scan, off);
    if (lane >= off) scan += up;
  }
  o[2] = scan;
  o[3] = shfl_sync(kFullMask, v, (5 * w + 3) % 32);
  float seg = v;
  for (int off = 4; off > 0; off /= 2) seg += shfl_xor_sync(kFullMask, seg, off, 8);
  o[4] = seg;
  o[5] = shfl_sync(kFullMask, v, (lane + 3) % 16, 16);
  float raw = v;
  for (int off = 16; off > 0; off /= 2) raw += __shfl_xor_sync(kFullMask, raw, off);
  o[6] = raw;
  bits[3 * tid] = ballot_sync(kFullMask, v > 0.0f);
  bits[3 * tid + 1] = any_sync(kFullMask, v > 2.0f);
  bits[3 * tid + 2] = all_sync(kFullMask, v > -100.0f);
  syncwarp();
}

constexpr int kTotalsMaxThreads = 256;

__global__ void totals_kernel(const float* x, float* out, Bug bug) {
  __shared__ float part[kTotalsMaxThreads];
  __shared__ float total;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  part[threadIdx.x] = x[i];
  __syncthreads();
  if (threadIdx.x == 0) {
    if (bug != Bug::UninitializedTotal) total = 0.0f;
    for (int t = 0; t < int(blockDim.x); ++t) total += part[t];
  }
  if (bug != Bug::BroadcastWithoutBarrier) __syncthreads();
  out[i] = total;
}

__global__ void chain_kernel(float* out) {
  const unsigned b = blockIdx.x;
  out[b] = (b + 1 < gridDim.x ? out[b + 1] : 0.0f) + 1.0f;
}

constexpr int kBoundedThreads = 64;

__global__ void __launch_bounds__(kBoundedThreads) bounded_kernel(float* out) { out[threadIdx.x] = float(threadIdx.x); }

__global__ void float4_sums_kernel(const float* x, float* out) {
  const float4 v = *reinterpret_cast<const float4*>(x + 4 * threadIdx.x);
  out[threadIdx.x] = (v.x + v.y) + (v.z + v.w);
}

constexpr int kStaticFloats = 10240;  // 40 KB

__global__ void static_dynamic_kernel(int n, float* out) {
  __shared__ float fixed[kStaticFloats];
  extern __shared__ float dyn[];
  for (int i = threadIdx.x; i < kStaticFloats; i += blockDim.x) fixed[i] = float(i);
  for (int i = threadIdx.x; i < n; i += blockDim.x) dyn[i] = float(n);
  __syncthreads();
  out[threadIdx.x] = fixed[threadIdx.x] + dyn[threadIdx.x % n];
}

__global__ void reverse_kernel(const float* x, int n, float* out) {
  extern __shared__ float dyn[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) dyn[i] = x[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = dyn[n - 1 - i];
}

}  // namespace

void mma16_tile(bool f16, const uint16_t* A, const uint16_t* B, const float* C, float* D, Bug bug) {
  mma_m16n8k16_kernel<<<1, 32, 0, ::dd::cuda_stream()>>>(f16, A, B, C, D, bug);
  DD_CUDA_LAUNCH_CHECK("mma_m16n8k16_kernel");
}

void mma_tf32_tile(const float* A, const float* B, const float* C, float* D, Bug bug) {
  mma_tf32_kernel<<<1, 32, 0, ::dd::cuda_stream()>>>(A, B, C, D, bug);
  DD_CUDA_LAUNCH_CHECK("mma_tf32_kernel");
}

void ldmatrix_fragments(const uint16_t* tile, int num, bool trans, uint32_t* out, Bug bug) {
  ldmatrix_kernel<<<1, 32, 0, ::dd::cuda_stream()>>>(tile, num, trans, out, bug);
  DD_CUDA_LAUNCH_CHECK("ldmatrix_kernel");
}

void ldmatrix_mma(bool f16, const uint16_t* A, const uint16_t* B, const float* C, float* D, Bug bug) {
  ldmatrix_mma_kernel<<<1, 64, kLdmmaSmem, ::dd::cuda_stream()>>>(f16, A, B, C, D, bug);
  DD_CUDA_LAUNCH_CHECK("ldmatrix_mma_kernel");
}

void cp_async_pipeline(int stages, const float* src, int tiles, float* out, Bug bug) {
  if (stages == 2)
    pipeline_kernel<2><<<1, 32, 0, ::dd::cuda_stream()>>>(src, tiles, out, bug);
  else
    pipeline_kernel<3><<<1, 32, 0, ::dd::cuda_stream()>>>(src, tiles, out, bug);
  DD_CUDA_LAUNCH_CHECK("pipeline_kernel");
}

void cp_async_halo(const float* x, int n, float* out, Bug bug) {
  halo_kernel<<<(n + kHaloOut - 1) / kHaloOut, 32, 0, ::dd::cuda_stream()>>>(x, n, out, bug);
  DD_CUDA_LAUNCH_CHECK("halo_kernel");
}

void warp_shuffles(const float* x, int threads, float* out, uint32_t* bits, Bug bug) {
  shuffles_kernel<<<1, threads, 0, ::dd::cuda_stream()>>>(x, out, bits, bug);
  DD_CUDA_LAUNCH_CHECK("shuffles_kernel");
}

void block_totals(const float* x, int blocks, int threads, float* out, Bug bug) {
  if (threads < 1 || threads > kTotalsMaxThreads) throw std::invalid_argument("block_totals: threads must be 1..256");
  totals_kernel<<<blocks, threads, 0, ::dd::cuda_stream()>>>(x, out, bug);
  DD_CUDA_LAUNCH_CHECK("totals_kernel");
}

void block_chain(int blocks, float* out) {
  chain_kernel<<<blocks, 1, 0, ::dd::cuda_stream()>>>(out);
  DD_CUDA_LAUNCH_CHECK("chain_kernel");
}

void bounded_iota(int threads, float* out) {
  bounded_kernel<<<1, threads, 0, ::dd::cuda_stream()>>>(out);
  DD_CUDA_LAUNCH_CHECK("bounded_kernel");
}

void float4_sums(const float* x, int threads, float* out) {
  float4_sums_kernel<<<1, threads, 0, ::dd::cuda_stream()>>>(x, out);
  DD_CUDA_LAUNCH_CHECK("float4_sums_kernel");
}

void static_and_dynamic_smem(int n, float* out, int attribute_bytes) {
  if (attribute_bytes >= 0)
    DD_CUDA_CHECK(
        cudaFuncSetAttribute(static_dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, attribute_bytes));
  static_dynamic_kernel<<<1, 256, n * sizeof(float), ::dd::cuda_stream()>>>(n, out);
  DD_CUDA_LAUNCH_CHECK("static_dynamic_kernel");
}

void dynamic_smem_reverse(const float* x, int n, float* out, int attribute_bytes) {
  if (attribute_bytes >= 0)
    DD_CUDA_CHECK(cudaFuncSetAttribute(reverse_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, attribute_bytes));
  reverse_kernel<<<1, 256, n * sizeof(float), ::dd::cuda_stream()>>>(x, n, out);
  DD_CUDA_LAUNCH_CHECK("reverse_kernel");
}

}  // namespace dd::warp_test::cuda
