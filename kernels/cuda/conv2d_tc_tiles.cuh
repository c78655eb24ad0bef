#pragma once
// Building blocks of the tensor-core implicit-GEMM convolutions (kernels/cuda/conv2d_tc.cu):
// the operand types, the tile shapes, the shared-memory layouts and the mma fragment loads.
//
// Operands reach the kernels already rounded (bf16, or tf32 kept in fp32 words) and with their
// channel count padded with zeros to a multiple of one 16-byte chunk (8 bf16 or 4 tf32): every
// 16-byte cp.async then lies inside one tap of one pixel, so the halo, the rows past M and the
// reduction tail are whole chunks that cp.async zero-fills. Any Ci, Co works, 3 channels included.
//
// Two shared-memory layouts, both padded rather than XOR-swizzled (simpler to check, and the
// padding below makes the fragment reads conflict-free; see each layout):
//  - K-contiguous ("row" tiles, forward and dx): tile[r][k], BK reduction elements per row plus
//    16 bytes of padding. A row is 80 bytes = 20 words, so the 8 rows an ldmatrix phase (or the 8
//    lanes g of a tf32 fragment) touches start on banks 0,20,8,28,16,4,24,12: all distinct.
//  - k-major ("column" tiles, weight gradient, whose GEMM rows and columns are both contiguous in
//    memory): tile[k][r], BM (or BN) elements per row plus 16 bytes (bf16) or 32 bytes (tf32);
//    row strides are then 4 words (bf16, 8 rows of one ldmatrix phase on distinct 4-word groups)
//    or 8 words (tf32, lane (g, t) reads word 8t + g) modulo 32: conflict-free again.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "engine/dtype.h"
#include "kernels/cuda/warp_ops.cuh"

namespace dd::kernels::cuda::conv_tc {

// The dynamic shared memory one block may opt into on sm_90 (H100, H200).
constexpr int kMaxBlockSmem = 227 * 1024;

// bf16 operands: mma m16n8k16, 32 reduction elements (64 bytes) per pipeline stage.
struct Bf16Op {
  using T = uint16_t;
  static constexpr int kChunk = 8;  // elements per 16-byte cp.async
  static constexpr int kMmaK = 16;
  static constexpr int kBK = 32;
  static constexpr int kRowPad = 8;  // K-contiguous tiles: 16 bytes
  static constexpr int kColPad = 8;  // k-major tiles: 16 bytes
};

// tf32 operands: mma m16n8k8, 16 per stage (64 bytes). Shared memory holds fp32 words (the
// tensors themselves when their channels fill whole chunks, else a zero-padded copy) and each
// fragment element is rounded (cvt.rna) as it is loaded: idempotent on rounded values.
struct Tf32Op {
  using T = float;
  static constexpr int kChunk = 4;
  static constexpr int kMmaK = 8;
  static constexpr int kBK = 16;
  static constexpr int kRowPad = 4;
  static constexpr int kColPad = 8;  // 32 bytes: see the layout note above
};

// Block tile BM x BN of the output, warp tile WM x WN, Stages-deep cp.async pipeline.
// kMinBlocks: the __launch_bounds__ occupancy hint, which caps registers at 64K / (threads x
// blocks) = 128 for every tile here. Without it ptxas picked its own cap and spilled 4 bytes in
// the 64x64 tiles at 72 registers; with a hint of 1 it took up to 158, i.e. one 128x128 block per SM.
template <int BM_, int BN_, int WM_, int WN_, int Stages_, int MinBlocks_>
struct TileShape {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, kStages = Stages_, kMinBlocks = MinBlocks_;
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int MI = WM / 16, NI = WN / 8;  // mma tiles per warp
  static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 16 == 0, "tile shape");
};

// Named CUTLASS style: block MxN, warp MxN, stages (the reduction depth per stage is the
// operand type's kBK: 32 for bf16, 16 for tf32).
using Tile128x128_64x32_S3 = TileShape<128, 128, 64, 32, 3, 2>;  // 8 warps
using Tile128x64_64x32_S3 = TileShape<128, 64, 64, 32, 3, 4>;    // 4 warps
using Tile64x64_32x32_S3 = TileShape<64, 64, 32, 32, 3, 4>;      // 4 warps
using Tile128x32_32x32_S3 = TileShape<128, 32, 32, 32, 3, 4>;    // 4 warps: narrow outputs (Co <= 32)
// Deeper and longer tiles for the sweep (bench_conv2d --sweep), not yet picked by any rule: twice
// the operand reuse of 128x64 per stage where one GEMM side is 64 (the 64-channel convs' forward
// and dx: 256x64; their dw, whose GEMM has Co = 64 rows and K*K*Ci columns: 64x256), four stages
// for more loads in flight. 100 KB of shared memory a block in either layout: two blocks an SM.
using Tile256x64_64x32_S4 = TileShape<256, 64, 64, 32, 4, 2>;    // 8 warps
using Tile64x256_32x64_S4 = TileShape<64, 256, 32, 64, 4, 2>;    // 8 warps

// Shared-memory elements of one stage of each layout.
template <class Op, int Rows>
constexpr int row_tile_elems() {
  return Rows * (Op::kBK + Op::kRowPad);
}
template <class Op, int Cols>
constexpr int col_tile_elems() {
  return Op::kBK * (Cols + Op::kColPad);
}

// ---- fragments ----------------------------------------------------------------------------
// Layouts of the fragments: warp_ops.cuh's header. r0/n0: the first GEMM row / column of the
// mma tile inside the stage tile; k0: its first reduction element; ld: the tile's row stride.

// A (16 x kMmaK) from a K-contiguous tile t[r][k].
template <class Op>
__device__ __forceinline__ void load_a_row(const typename Op::T* t, int ld, int r0, int k0, int lane,
                                           uint32_t (&a)[4]) {
  if constexpr (Op::kChunk == 8) {
    warp::ldmatrix_x4(a, t + (r0 + (lane & 15)) * ld + k0 + ((lane >> 4) << 3));
  } else {
    const int g = lane >> 2, c = lane & 3;
    a[0] = warp::f32_to_tf32(t[(r0 + g) * ld + k0 + c]);
    a[1] = warp::f32_to_tf32(t[(r0 + g + 8) * ld + k0 + c]);
    a[2] = warp::f32_to_tf32(t[(r0 + g) * ld + k0 + c + 4]);
    a[3] = warp::f32_to_tf32(t[(r0 + g + 8) * ld + k0 + c + 4]);
  }
}

// B of two adjacent n8 mma tiles (columns n0..n0+15) from a K-contiguous tile t[n][k].
template <class Op>
__device__ __forceinline__ void load_b_row(const typename Op::T* t, int ld, int n0, int k0, int lane,
                                           uint32_t (&b0)[2], uint32_t (&b1)[2]) {
  if constexpr (Op::kChunk == 8) {
    uint32_t r[4];
    warp::ldmatrix_x4(r, t + (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + (((lane >> 3) & 1) << 3));
    b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
  } else {
    const int g = lane >> 2, c = lane & 3;
    b0[0] = warp::f32_to_tf32(t[(n0 + g) * ld + k0 + c]);
    b0[1] = warp::f32_to_tf32(t[(n0 + g) * ld + k0 + c + 4]);
    b1[0] = warp::f32_to_tf32(t[(n0 + 8 + g) * ld + k0 + c]);
    b1[1] = warp::f32_to_tf32(t[(n0 + 8 + g) * ld + k0 + c + 4]);
  }
}

// A (16 x kMmaK) from a k-major tile t[k][r] (ldmatrix .trans for bf16).
template <class Op>
__device__ __forceinline__ void load_a_col(const typename Op::T* t, int ld, int r0, int k0, int lane,
                                           uint32_t (&a)[4]) {
  if constexpr (Op::kChunk == 8) {
    const int i = lane >> 3;
    warp::ldmatrix_x4_trans(a, t + (k0 + (lane & 7) + ((i >> 1) << 3)) * ld + r0 + ((i & 1) << 3));
  } else {
    const int g = lane >> 2, c = lane & 3;
    a[0] = warp::f32_to_tf32(t[(k0 + c) * ld + r0 + g]);
    a[1] = warp::f32_to_tf32(t[(k0 + c) * ld + r0 + g + 8]);
    a[2] = warp::f32_to_tf32(t[(k0 + c + 4) * ld + r0 + g]);
    a[3] = warp::f32_to_tf32(t[(k0 + c + 4) * ld + r0 + g + 8]);
  }
}

// B of two adjacent n8 mma tiles from a k-major tile t[k][n].
template <class Op>
__device__ __forceinline__ void load_b_col(const typename Op::T* t, int ld, int n0, int k0, int lane,
                                           uint32_t (&b0)[2], uint32_t (&b1)[2]) {
  if constexpr (Op::kChunk == 8) {
    uint32_t r[4];
    const int i = lane >> 3;
    warp::ldmatrix_x4_trans(r, t + (k0 + (lane & 7) + ((i & 1) << 3)) * ld + n0 + ((i >> 1) << 3));
    b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
  } else {
    const int g = lane >> 2, c = lane & 3;
    b0[0] = warp::f32_to_tf32(t[(k0 + c) * ld + n0 + g]);
    b0[1] = warp::f32_to_tf32(t[(k0 + c + 4) * ld + n0 + g]);
    b1[0] = warp::f32_to_tf32(t[(k0 + c) * ld + n0 + 8 + g]);
    b1[1] = warp::f32_to_tf32(t[(k0 + c + 4) * ld + n0 + 8 + g]);
  }
}

template <class Op>
__device__ __forceinline__ void mma(float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (Op::kChunk == 8)
    warp::mma_m16n8k16_bf16(acc, a, b, acc);
  else
    warp::mma_m16n8k8_tf32(acc, a, b, acc);
}

// Where a forward kernel writes y [M, N] (row stride N): fp32 into f, or, with bf set instead,
// bf16 into bf, each value rounded to nearest even from the fp32 value f would have held
// (conv2d_forward_tc_bf16): bitwise Tensor::to(DType::BF16) of the fp32 y, in half the bytes.
struct YOut {
  float* f = nullptr;
  uint16_t* bf = nullptr;
};

// A lane's output column pair (n, n + 1), n even, of row m: acc + bias. With N even the pair is
// aligned (8 bytes in fp32, 4 in bf16) and both inside or both outside N: one store; else two
// guarded ones.
__device__ __forceinline__ void store_pair(const YOut& y, int64_t m, int n, int N, const float* bias, float a0,
                                           float a1) {
  const float v0 = a0 + (bias && n < N ? bias[n] : 0.0f);
  const float v1 = a1 + (bias && n + 1 < N ? bias[n + 1] : 0.0f);
  const int64_t i = m * N + n;
  if (y.bf) {
    const uint16_t b0 = dtype_conv::f32_to_bf16(v0), b1 = dtype_conv::f32_to_bf16(v1);
    if ((N & 1) == 0) {
      if (n >= N) return;
      const uint32_t pair = uint32_t(b0) | (uint32_t(b1) << 16);
#if defined(__CUDA_ARCH__)
      *reinterpret_cast<uint32_t*>(y.bf + i) = pair;
#else
      std::memcpy(y.bf + i, &pair, sizeof pair);  // host emulation: no type punning for g++'s aliasing rules
#endif
    } else {
      if (n < N) y.bf[i] = b0;
      if (n + 1 < N) y.bf[i + 1] = b1;
    }
    return;
  }
  if ((N & 1) == 0) {
    if (n < N) *reinterpret_cast<float2*>(y.f + i) = make_float2(v0, v1);
  } else {
    if (n < N) y.f[i] = v0;
    if (n + 1 < N) y.f[i + 1] = v1;
  }
}

// One stage's products of a warp: acc[mi][ni] += A(rows wr + 16 mi) B(cols wc + 8 ni) over the
// stage's kBK. kColA / kColB: which layout each operand tile has.
template <class Op, class Tile, bool kColA, bool kColB>
__device__ __forceinline__ void warp_stage_product(const typename Op::T* As, int lda, const typename Op::T* Bs,
                                                   int ldb, int wr, int wc, int lane,
                                                   float (&acc)[Tile::MI][Tile::NI][4]) {
#pragma unroll
  for (int ks = 0; ks < Op::kBK; ks += Op::kMmaK) {
    uint32_t a[Tile::MI][4], b[Tile::NI][2];
#pragma unroll
    for (int mi = 0; mi < Tile::MI; ++mi) {
      if constexpr (kColA)
        load_a_col<Op>(As, lda, wr + 16 * mi, ks, lane, a[mi]);
      else
        load_a_row<Op>(As, lda, wr + 16 * mi, ks, lane, a[mi]);
    }
#pragma unroll
    for (int nj = 0; nj < Tile::NI; nj += 2) {
      if constexpr (kColB)
        load_b_col<Op>(Bs, ldb, wc + 8 * nj, ks, lane, b[nj], b[nj + 1]);
      else
        load_b_row<Op>(Bs, ldb, wc + 8 * nj, ks, lane, b[nj], b[nj + 1]);
    }
#pragma unroll
    for (int mi = 0; mi < Tile::MI; ++mi)
#pragma unroll
      for (int ni = 0; ni < Tile::NI; ++ni) mma<Op>(acc[mi][ni], a[mi], b[ni]);
  }
}

}  // namespace dd::kernels::cuda::conv_tc
