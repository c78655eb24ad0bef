#pragma once
// Test kernels for kernels/cuda/warp_ops.cuh (tests/emu/warp_kernels.cu). The
// emulator runs them as dd::warp_test::emu (the file goes through
// tests/emu/rewrite.cmake like the real kernels; tests/emu/test_emu_warp.cpp),
// and nvcc compiles them for the device (target dd_warp_kernels_nvcc), so every
// wrapper's PTX path builds. Pointers are device pointers (host memory under
// the emulator). Each launcher can plant one bug, to show that the emulator
// catches it.
#include <cstdint>

namespace dd::warp_test::cuda {

enum class Bug {
  None,
  // mma
  SwappedARegisters,    // a[1] and a[2] exchanged: A's rows 8-15 and columns 8-15 confused
  TransposedBFragment,  // b read as B[g][2t..] instead of B[2t..][g]
  LaneSkipsMma,         // lane 5 returns before the mma
  // ldmatrix
  MisalignedRow,        // every row address 2 bytes past its 16-byte boundary
  RowInGlobalMemory,    // lane 3 passes a global memory address
  RowPastArrayEnd,      // the last row starts 8 bytes before the end of its array
  NoTransB,             // ldmatrix + mma: B loaded without .trans
  // cp.async
  NoWait,               // a stage is read without cp_async_wait
  WaitTooLoose,         // cp_async_wait<stages - 1>: the stage read is still in flight
  ClampedHalo,          // halo chunks copied from the nearest valid chunk instead of zero-filled
  // shuffles and votes
  LaneSkipsShuffle,     // lane 7 leaves the butterfly loop early
  LaneAtBarrier,        // lane 7 waits at __syncthreads while its warp shuffles
  SplitCallSites,       // lanes 0-15 and 16-31 shuffle from two different lines
  LaneReturnsEarly,     // lane 31 returns before the first shuffle
  MaskWithoutSelf,      // lane 0 passes a mask without itself
  // block-level shared memory
  BroadcastWithoutBarrier,  // thread 0 writes the block total, the others read it with no barrier between
  UninitializedTotal,       // the total is summed into without being zeroed first
};

// D (16x8) = A (16x16, row-major) B (16x8, row-major k x n) + C, bf16 or f16
// bits, one warp, fragments built from global memory with the PTX layouts.
void mma16_tile(bool f16, const uint16_t* A, const uint16_t* B, const float* C, float* D, Bug bug = Bug::None);
// D (16x8) = tf32(A) (16x8) tf32(B) (8x8) + C, inputs rounded with cvt.rna.tf32.f32.
void mma_tf32_tile(const float* A, const float* B, const float* C, float* D, Bug bug = Bug::None);
// ldmatrix .x{num}{.trans} of a 16x16 bf16 tile (row-major, padded rows in
// shared memory); matrix i is rows 8(i%2).., columns 8(i/2)... out[lane * 4 + i]
// is register i of lane.
void ldmatrix_fragments(const uint16_t* tile, int num, bool trans, uint32_t* out, Bug bug = Bug::None);
// D (32x16) = A (32x32) B (32x16) + C through cp.async into dynamic shared
// memory, ldmatrix_x4 (A) and ldmatrix_x2_trans (B), two warps, two k steps.
void ldmatrix_mma(bool f16, const uint16_t* A, const uint16_t* B, const float* C, float* D, Bug bug = Bug::None);
// Streams `tiles` tiles of 128 floats through a ring of `stages` (2 or 3)
// shared buffers filled by cp.async; out[128 t + e] = 2 src[128 t + (e + 37) % 128] + t.
void cp_async_pipeline(int stages, const float* src, int tiles, float* out, Bug bug = Bug::None);
// out[i] = x[i-1] + x[i] + x[i+1] (zero outside 0..n-1); blocks of 64 outputs
// load their window with cp.async, zero-filling what lies outside x.
void cp_async_halo(const float* x, int n, float* out, Bug bug = Bug::None);
// One block of `threads` (a multiple of 32). Per thread, out[7 t + ...]:
// 0 butterfly sum (__shfl_xor_sync), 1 down-sweep sum (valid in lane 0),
// 2 inclusive scan (__shfl_up_sync), 3 broadcast of lane (5 w + 3) % 32,
// 4 sum over 8-lane segments (width 8), 5 value of lane (l + 3) % 16 of its
// 16-lane segment (width 16), 6 butterfly sum by the raw __shfl_xor_sync.
// bits[3 t + ...]: ballot(x > 0), any(x > 2), all(x > -100).
void warp_shuffles(const float* x, int threads, float* out, uint32_t* bits, Bug bug = Bug::None);
// Blocks of `threads` (at most 256): out[i] = the sum of x over i's block,
// gathered in static __shared__ arrays and summed by thread 0 (a broadcast).
void block_totals(const float* x, int blocks, int threads, float* out, Bug bug = Bug::None);
// A planted inter-block dependency: block b (one thread) writes out[b] =
// out[b + 1] + 1 (the last block: 1), right only if the blocks run last to first.
void block_chain(int blocks, float* out);
// out[t] = t for t < threads, from a kernel declared __launch_bounds__(64): more
// than 64 threads is a launch the device refuses (the emulator throws).
void bounded_iota(int threads, float* out);
// out[t] = the sum of the float4 at x + 4t, for t < threads: x must be 16-byte
// aligned, as a vector load on the device needs (the emulated build checks it).
void float4_sums(const float* x, int threads, float* out);
// out[t] = t + n (one block of 256 threads), through a 40 KB static __shared__
// array and n floats of extern __shared__; attribute_bytes >= 0 calls
// cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first. Together above 48 KB
// without the attribute, the device refuses the launch.
void static_and_dynamic_smem(int n, float* out, int attribute_bytes);
// out = x reversed through n floats of extern __shared__; attribute_bytes >= 0
// calls cudaFuncSetAttribute(MaxDynamicSharedMemorySize) first.
void dynamic_smem_reverse(const float* x, int n, float* out, int attribute_bytes);

}  // namespace dd::warp_test::cuda
