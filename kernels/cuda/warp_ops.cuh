#pragma once
// Warp-level building blocks for tensor-core kernels: mma.sync, ldmatrix,
// cp.async, shuffles and votes. Each is a small inline wrapper with two bodies:
//  - on the device (__CUDA_ARCH__): the PTX inline asm or the CUDA intrinsic;
//  - under the host emulation (DD_CUDA_EMULATION, tests/support/cuda_emulation.h):
//    the emulator's version, which checks what the hardware gets wrong silently:
//    fragment layouts (it computes with the PTX ones), ldmatrix and cp.async
//    addresses (inside a __shared__ array, 16-byte aligned), reads of a cp.async
//    destination before its wait (NaN), lanes that miss a collective (divergence).
// nvcc's host pass sees neither macro and gets bodies that are never called.
// Keep raw PTX in this file: tests/emu/rewrite.cmake rejects inline asm elsewhere.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 / mma.m16n8k8",
// "ldmatrix"), with g = lane / 4 and t = lane % 4; a register holding two 16-bit
// elements has the lower-indexed one in its low half:
//  mma_m16n8k16_{bf16,f16}: A 16x16 row-major, a[0] = A[g][2t..2t+1],
//    a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..];
//    B 16x8 (k x n), b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g].
//  mma_m16n8k8_tf32: a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4],
//    a[3] = A[g+8][t+4]; b[0] = B[t][g], b[1] = B[t+4][g].
//  C and D (16x8 fp32): c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1].
//  ldmatrix_x{1,2,4}: lane 8i+r gives the address of row r of matrix i (16
//    bytes, 16-byte aligned, in shared memory); register i of lane l gets row
//    l/4, columns 2(l%4)..+1 of matrix i (_trans: column l/4, rows 2(l%4)..+1).
//    So ldmatrix_x4 on a 16x16 row-major tile with lane l pointing at row l%16,
//    column 8(l/16) gives the mma A fragment; ldmatrix_x2_trans on a 16x8 k x n
//    tile with lane l (< 16) pointing at row l gives the B fragment.
#include <cstdint>

#if !defined(__CUDA_ARCH__) && defined(DD_CUDA_EMULATION)
#define DD_WARP_EMU 1
// The emulated wrappers take the caller's file and line for their reports.
#define DD_WARP_SITE , ::dd_emu::Site dd_site = ::dd_emu::Site::here()
#else
#define DD_WARP_SITE
#endif

namespace dd::kernels::cuda::warp {

constexpr unsigned kFullMask = 0xFFFFFFFFu;

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif

// ---- mma.sync: D = A B + C, fp32 accumulate (d may be c) ------------------

__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                  const float (&c)[4] DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(DD_WARP_EMU)
  ::dd_emu::mma_sync(::dd_emu::MmaType::BF16, d, a, b, c, dd_site);
#else
  (void)d, (void)a, (void)b, (void)c;
#endif
}

__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                 const float (&c)[4] DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(DD_WARP_EMU)
  ::dd_emu::mma_sync(::dd_emu::MmaType::F16, d, a, b, c, dd_site);
#else
  (void)d, (void)a, (void)b, (void)c;
#endif
}

// a and b hold tf32 values in fp32 registers (see f32_to_tf32).
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                 const float (&c)[4] DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(DD_WARP_EMU)
  ::dd_emu::mma_sync(::dd_emu::MmaType::TF32, d, a, b, c, dd_site);
#else
  (void)d, (void)a, (void)b, (void)c;
#endif
}

// cvt.rna.tf32.f32: x rounded to tf32 (nearest, ties away from zero), as fp32 bits.
__device__ __forceinline__ uint32_t f32_to_tf32(float x) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#elif defined(DD_WARP_EMU)
  return ::dd_emu::f32_to_tf32(x);
#else
  (void)x;
  return 0;
#endif
}

// ---- ldmatrix: 8x8 matrices of 16-bit elements from shared memory ---------

__device__ __forceinline__ void ldmatrix_x1(uint32_t& r, const void* row DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r) : "r"(smem_u32(row)));
#elif defined(DD_WARP_EMU)
  ::dd_emu::ldmatrix(1, false, &r, row, dd_site);
#else
  (void)r, (void)row;
#endif
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* row DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(row)));
#elif defined(DD_WARP_EMU)
  ::dd_emu::ldmatrix(2, false, r, row, dd_site);
#else
  (void)r, (void)row;
#endif
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(row)));
#elif defined(DD_WARP_EMU)
  ::dd_emu::ldmatrix(4, false, r, row, dd_site);
#else
  (void)r, (void)row;
#endif
}

__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t& r, const void* row DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r) : "r"(smem_u32(row)));
#elif defined(DD_WARP_EMU)
  ::dd_emu::ldmatrix(1, true, &r, row, dd_site);
#else
  (void)r, (void)row;
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(row)));
#elif defined(DD_WARP_EMU)
  ::dd_emu::ldmatrix(2, true, r, row, dd_site);
#else
  (void)r, (void)row;
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(row)));
#elif defined(DD_WARP_EMU)
  ::dd_emu::ldmatrix(4, true, r, row, dd_site);
#else
  (void)r, (void)row;
#endif
}

// ---- cp.async: 16-byte global -> shared copies in commit groups (sm_80+) ---

// Copies 16 bytes; both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem_dst)), "l"(gmem_src) : "memory");
#elif defined(DD_WARP_EMU)
  ::dd_emu::cp_async_16(smem_dst, gmem_src, 16, dd_site);
#else
  (void)smem_dst, (void)gmem_src;
#endif
}

// Reads src_bytes (0..16) and zero-fills the rest of the 16: a halo chunk
// outside the tensor passes 0 and lands as zeros (its source is not read).
__device__ __forceinline__ void cp_async_16_zfill(void* smem_dst, const void* gmem_src, int src_bytes DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem_dst)), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
#elif defined(DD_WARP_EMU)
  ::dd_emu::cp_async_16(smem_dst, gmem_src, src_bytes, dd_site);
#else
  (void)smem_dst, (void)gmem_src, (void)src_bytes;
#endif
}

// All 16 bytes when pred, else 16 zeros.
__device__ __forceinline__ void cp_async_16_pred(void* smem_dst, const void* gmem_src, bool pred DD_WARP_SITE) {
#if defined(DD_WARP_EMU)
  cp_async_16_zfill(smem_dst, gmem_src, pred ? 16 : 0, dd_site);
#else
  cp_async_16_zfill(smem_dst, gmem_src, pred ? 16 : 0);
#endif
}

// Closes the group of this thread's cp.async issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(DD_WARP_EMU)
  ::dd_emu::cp_async_commit();
#endif
}

// Waits until at most N of this thread's committed groups are pending. Other
// threads' copies need a __syncthreads() after their own waits.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  static_assert(N >= 0, "cp_async_wait<N>: N groups may stay pending");
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(DD_WARP_EMU)
  ::dd_emu::cp_async_wait(N);
#endif
}

__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#elif defined(DD_WARP_EMU)
  ::dd_emu::cp_async_wait_all();
#endif
}

// ---- shuffles and votes -----------------------------------------------------

template <class T>
__device__ __forceinline__ T shfl_sync(unsigned mask, T v, int src_lane, int width = 32 DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __shfl_sync(mask, v, src_lane, width);
#elif defined(DD_WARP_EMU)
  return ::dd_emu::shfl_sync(mask, v, src_lane, width, dd_site);
#else
  (void)mask, (void)src_lane, (void)width;
  return v;
#endif
}

template <class T>
__device__ __forceinline__ T shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32 DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __shfl_xor_sync(mask, v, lane_mask, width);
#elif defined(DD_WARP_EMU)
  return ::dd_emu::shfl_xor_sync(mask, v, lane_mask, width, dd_site);
#else
  (void)mask, (void)lane_mask, (void)width;
  return v;
#endif
}

template <class T>
__device__ __forceinline__ T shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32 DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __shfl_down_sync(mask, v, delta, width);
#elif defined(DD_WARP_EMU)
  return ::dd_emu::shfl_down_sync(mask, v, delta, width, dd_site);
#else
  (void)mask, (void)delta, (void)width;
  return v;
#endif
}

template <class T>
__device__ __forceinline__ T shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32 DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __shfl_up_sync(mask, v, delta, width);
#elif defined(DD_WARP_EMU)
  return ::dd_emu::shfl_up_sync(mask, v, delta, width, dd_site);
#else
  (void)mask, (void)delta, (void)width;
  return v;
#endif
}

__device__ __forceinline__ unsigned ballot_sync(unsigned mask, bool pred DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __ballot_sync(mask, pred);
#elif defined(DD_WARP_EMU)
  return ::dd_emu::ballot_sync(mask, pred, dd_site);
#else
  (void)mask, (void)pred;
  return 0;
#endif
}

__device__ __forceinline__ bool any_sync(unsigned mask, bool pred DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __any_sync(mask, pred) != 0;
#elif defined(DD_WARP_EMU)
  return ::dd_emu::any_sync(mask, pred, dd_site) != 0;
#else
  (void)mask;
  return pred;
#endif
}

__device__ __forceinline__ bool all_sync(unsigned mask, bool pred DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  return __all_sync(mask, pred) != 0;
#elif defined(DD_WARP_EMU)
  return ::dd_emu::all_sync(mask, pred, dd_site) != 0;
#else
  (void)mask;
  return pred;
#endif
}

__device__ __forceinline__ void syncwarp(unsigned mask = kFullMask DD_WARP_SITE) {
#if defined(__CUDA_ARCH__)
  __syncwarp(mask);
#elif defined(DD_WARP_EMU)
  ::dd_emu::syncwarp(mask, dd_site);
#else
  (void)mask;
#endif
}

}  // namespace dd::kernels::cuda::warp
