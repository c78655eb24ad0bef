#pragma once
// A small single-threaded SGEMM for the Winograd convolutions' per-chunk products
// (kernels/cpu/conv2d_winograd.cpp): C [m x n] = or += A [m x k] B [k x n], with m, k, n from 1 to
// a few hundred. Eigen re-packs both operands on every call; here the forward's and
// backward-data's B (the transformed weights, the same for every chunk of a call) is packed once
// per call (pack_b), A is read in place through its strides (V's rows, or Yh's columns for the
// weight gradient), and an unpacked row-major B is packed one panel at a time.
//
// Determinism: C(i, j) starts from 0 (overwrite) or its old value (accumulate) and adds
// a(i, p) b(p, j) for p = 0, 1, ..., k - 1 in that order, one rounding per step (a fused
// multiply-add where the target has one, as GCC contracts the vector code; the same build gives
// the same bits). Nothing depends on threads or on how m, n are blocked, so a call's results
// depend only on its operands and shapes.
#include <cstdint>

namespace dd::kernels::cpu::sgemm {

// Columns of B per panel, and rows of A per microkernel call: a 12 x 32 tile of C is 24
// accumulators, two panel vectors and a broadcast in AVX-512's 32 registers. Measured on the
// Winograd GEMMs (a chunk's P products, one thread, Zen 4, min of 3 while a build ran): 12x32 and
// 8x32 ran 90-111 GFLOP/s on 64- and 128-channel shapes; 6x64 ran up to 20%, 16x16 up to 35% and
// 8x48 (a third of a 64-column panel wasted) 35% slower; 12 rows beat 8 on the weight
// gradient's 512 x 512 (46-50 against 38-45 GFLOP/s).
constexpr int kNR = 32;
constexpr int kMR = 12;

// Floats pack_b writes for a k x n B: ceil(n / kNR) panels of k x kNR.
inline int64_t packed_b_size(int64_t k, int64_t n) { return (n + kNR - 1) / kNR * kNR * k; }

// dst = B packed for gemm_packed, B(p, j) = b[p * rs + j * cs]: panel q holds columns
// q kNR .. q kNR + kNR - 1 as k rows of kNR contiguous floats, zero past column n.
void pack_b(const float* b, int64_t rs, int64_t cs, int64_t k, int64_t n, float* dst);

// C = A B (accumulate: C += A B), C row-major with row stride ldc, a(i, p) = a[i * a_rs + p * a_cs]
// where a_rs == 1 or a_cs == 1 (V's rows, or a transposed row-major matrix's columns); B from
// pack_b. Overwrite never reads C (NaN there is harmless).
void gemm_packed(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs, int64_t a_cs, const float* bp,
                 float* c, int64_t ldc, bool accumulate);

// The same with B row-major [k x n], row stride ldb, packed here a panel at a time.
void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
          float* c, int64_t ldc, bool accumulate);

}  // namespace dd::kernels::cpu::sgemm
