#pragma once
// The work split of kernels/cuda/channel_sums.cuh, in plain C++ so that the CPU
// tests can check it (tests/test_group_norm_act.cpp: every element is summed
// exactly once and every partial slot written once).
#include <algorithm>
#include <cstdint>

#if defined(__CUDACC__)
#define DD_PLAN_HD __host__ __device__ __forceinline__
#else
#define DD_PLAN_HD inline
#endif

namespace dd::kernels::cuda {

constexpr int kColX = 32;  // channels per block (one warp wide)
constexpr int kColY = 8;   // row lanes per block

// Positions per chunk, from the shape alone: enough chunks that B x channel
// tiles x chunks gives ~2048 blocks, each lane looping over >= 1 position.
struct ChunkPlan {
  int64_t rows = 1, chunks = 1, ctiles = 1;
};
inline ChunkPlan plan_chunks(int64_t B, int64_t S, int64_t C) {
  ChunkPlan p;
  p.ctiles = (C + kColX - 1) / kColX;
  const int64_t tiles = B * p.ctiles;
  int64_t want = (2048 + tiles - 1) / tiles;
  const int64_t most = (S + kColY - 1) / kColY;  // at least kColY positions per chunk when S allows
  want = std::max<int64_t>(1, std::min(want, most));
  p.rows = (S + want - 1) / want;
  p.chunks = (S + p.rows - 1) / p.rows;  // every chunk non-empty
  return p;
}

// Block (chunk) covers positions [chunk * rows, chunk_end) of its batch item.
DD_PLAN_HD int64_t chunk_end(int64_t chunk, int64_t rows, int64_t S) {
  return chunk * rows + rows < S ? chunk * rows + rows : S;
}

DD_PLAN_HD int64_t element_index(int64_t b, int64_t s, int64_t c, int64_t S, int64_t C) {
  return (b * S + s) * C + c;
}

// Where the partial of sum k for (chunk, b, c) lives: [K][chunks][B][C], so the
// fold's threads (one per b*C + c) read consecutive addresses.
DD_PLAN_HD int64_t partial_slot(int k, int64_t chunk, int64_t b, int64_t c, int64_t chunks, int64_t B, int64_t C) {
  return ((k * chunks + chunk) * B + b) * C + c;
}

// Element i of a [B, S, C] tensor: its batch item and channel, shared by every elementwise pass of
// these ops. Two divisions per element: in 32 bits whenever the tensor has fewer than 2^32
// elements (a 64-bit division is a long software routine on the GPU, a 32-bit one a few
// instructions; these passes ran at 15-35% of the copy bandwidth on an H200, against 55-69% for
// the plain elementwise ops). The caller passes n = B * S * C.
struct BcIndex {
  int64_t b, c;
};
DD_PLAN_HD BcIndex bc_index(int64_t i, int64_t S, int64_t C, int64_t n) {
  if (n <= int64_t(0xffffffffu)) {
    const uint32_t ui = static_cast<uint32_t>(i), uc = static_cast<uint32_t>(C);
    const uint32_t row = ui / uc;
    return {static_cast<int64_t>(row / static_cast<uint32_t>(S)), static_cast<int64_t>(ui - row * uc)};
  }
  const int64_t row = i / C;
  return {row / S, i - row * C};
}

}  // namespace dd::kernels::cuda
