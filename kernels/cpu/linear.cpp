#include "kernels/linear.h"

#include <algorithm>
#include <memory>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/operand_rounding.h"

namespace dd::kernels::cpu {

namespace {
// dw = dy^T x sums over the m rows, and the 1x1 convs' m (pixels) is long beside their small
// [n, k] output. Eigen threads a GEMM over its output blocks, which left a core mostly idle there
// (1x1 conv backward-weight 1.2-1.3x faster on 2 threads than on 1, bench/RESULTS.md's CPU
// sections, 2026-11-23), and its blocking follows the thread count. So: fixed row ranges of at
// least kRowsPerPart rows, each summed by one single-threaded GEMM, the ranges' sums added in
// range order. The result depends on the shapes alone, not on the threads.
constexpr int64_t kRowsPerPart = 512, kMaxParts = 8;
constexpr int64_t kRowsPerBlock = 64;  // dw rows per GEMM when m is too short to split
constexpr int64_t kMaxPartialBytes = int64_t{64} << 20;  // the extra parts' [n, k] sums
// y = x w^T and dx = dy w: rows are independent, so fixed blocks of rows, one single-threaded GEMM
// each. Eigen's own threading of these GEMMs gave 1.0-1.3x on 2 threads for the 1x1 convs' forward
// and backward-data (bench/RESULTS.md's CPU sections, 2026-11-28), and its blocking follows the
// thread count; fixed blocks make the bits depend on the shapes alone.
constexpr int64_t kMinBlockRows = 64, kMaxRowBlocks = 16;

// f(r0, r1) for fixed row blocks of [0, m), in parallel (Eigen itself never threads: kernels/cpu/gemm.h).
template <typename F>
void for_row_blocks(int64_t m, F f) {
  const int64_t blocks = std::clamp<int64_t>(m / kMinBlockRows, 1, kMaxRowBlocks);
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) f(b * m / blocks, (b + 1) * m / blocks);
}

void weight_grad(const ConstMatMap& gm, const ConstMatMap& xm, float* dw) {
  const int64_t m = xm.rows(), k = xm.cols(), n = gm.cols(), wn = n * k;
  int64_t parts = std::clamp<int64_t>(m / kRowsPerPart, 1, kMaxParts);
  parts = std::max<int64_t>(1, std::min(parts, 1 + kMaxPartialBytes / std::max<int64_t>(1, wn * 4)));
  if (parts == 1) {
    // Under 2 * kRowsPerPart rows one part would leave the other threads idle (0.75-0.85x on 2
    // threads, bench/RESULTS.md): split dw's rows into fixed blocks instead, each one GEMM over all m.
    const int64_t blocks = std::clamp<int64_t>(n / kRowsPerBlock, 1, kMaxParts);
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * n / blocks, n1 = (blk + 1) * n / blocks;
      MatMap(dw + n0 * k, n1 - n0, k).noalias() = gm.middleCols(n0, n1 - n0).transpose() * xm;
    }
    return;
  }
  std::unique_ptr<float[]> extra(new float[static_cast<std::size_t>((parts - 1) * wn)]);
  // Always an active parallel region: Eigen does not thread inside one, so every GEMM below is
  // single-threaded whatever the thread count (even with one part).
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t r0 = p * m / parts, r1 = (p + 1) * m / parts;
      MatMap(p == 0 ? dw : extra.get() + (p - 1) * wn, n, k).noalias() =
          gm.middleRows(r0, r1 - r0).transpose() * xm.middleRows(r0, r1 - r0);
    }
  }
  for (int64_t p = 1; p < parts; ++p) {
    const float* src = extra.get() + (p - 1) * wn;
#pragma omp parallel for simd schedule(static) if (wn > (1 << 16))
    for (int64_t i = 0; i < wn; ++i) dw[i] += src[i];
  }
}
}  // namespace

Tensor linear_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias) {
  // cuBLAS rounds to tf32 under TF32/BF16 (kernels/cpu/operand_rounding.h).
  const OperandRounding r = gemm_rounding(current_context().precision());
  const Tensor x = rounded(x_in, r), w = rounded(w_in, r);
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  Tensor y = Tensor::empty({m, n});
  ConstMatMap xm(x.data(), m, k), wm(w.data(), n, k);
  const float* pb = bias.defined() ? bias.data() : nullptr;
  float* py = y.data();
  for_row_blocks(m, [&](int64_t r0, int64_t r1) {
    MatMap ym(py + r0 * n, r1 - r0, n);
    // Starting from the broadcast bias lets the GEMM accumulate onto it: one pass over y.
    if (pb)
      ym.rowwise() = ConstVecMap(pb, n);
    else
      ym.setZero();
    ym.noalias() += xm.middleRows(r0, r1 - r0) * wm.transpose();
  });
  return y;
}

LinearGrads linear_backward(const Tensor& x_in, const Tensor& w_in, const Tensor& dy_in, bool need_dx, bool need_dw,
                            bool need_dbias) {
  const OperandRounding r = gemm_rounding(current_context().precision());
  const Tensor x = need_dw ? rounded(x_in, r) : x_in, w = need_dx ? rounded(w_in, r) : w_in;
  const Tensor dy = need_dx || need_dw ? rounded(dy_in, r) : dy_in;
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  ConstMatMap xm(x.data(), m, k), wm(w.data(), n, k), gm(dy.data(), m, n);
  LinearGrads g;
  if (need_dx) {
    g.dx = Tensor::empty({m, k});
    float* pdx = g.dx.data();
    for_row_blocks(m, [&](int64_t r0, int64_t r1) {
      MatMap(pdx + r0 * k, r1 - r0, k).noalias() = gm.middleRows(r0, r1 - r0) * wm;
    });
  }
  if (need_dw) {
    g.dw = Tensor::empty({n, k});
    weight_grad(gm, xm, g.dw.data());
  }
  if (need_dbias) {
    g.dbias = Tensor::empty({n});
    column_sums(dy_in.data(), m, n, g.dbias.data());
  }
  return g;
}

}  // namespace dd::kernels::cpu
