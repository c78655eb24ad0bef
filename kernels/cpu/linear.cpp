#include "kernels/linear.h"

#include <algorithm>
#include <memory>

#include "kernels/cpu/channel_parts.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/linear_view.h"
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

// dw = dy^T x; x's rows are gathered from its parts per range (the whole x for the short case).
void weight_grad(const ConstMatMap& gm, const ChannelParts& x, float* dw) {
  const int64_t m = gm.rows(), k = x.total, n = gm.cols(), wn = n * k;
  int64_t parts = std::clamp<int64_t>(m / kRowsPerPart, 1, kMaxParts);
  parts = std::max<int64_t>(1, std::min(parts, 1 + kMaxPartialBytes / std::max<int64_t>(1, wn * 4)));
  if (parts == 1) {
    // Under 2 * kRowsPerPart rows one part would leave the other threads idle (0.75-0.85x on 2
    // threads, bench/RESULTS.md): split dw's rows into fixed blocks instead, each one GEMM over all m.
    std::unique_ptr<RowBuffer> all;
    if (!x.plain()) {
      all.reset(new RowBuffer(m, k));
      x.gather(0, m, all->at(0));
    }
    const ConstMatMap xm(all ? all->at(0) : x.part[0], m, k);
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
    std::unique_ptr<RowBuffer> rows;
#pragma omp for schedule(static)
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t r0 = p * m / parts, r1 = (p + 1) * m / parts;
      const float* xr = x.part[0] + r0 * k;
      if (!x.plain()) {
        if (!rows) rows.reset(new RowBuffer(m / parts + 1, k));
        x.gather(r0, r1 - r0, rows->at(r0));
        xr = rows->at(r0);
      }
      MatMap(p == 0 ? dw : extra.get() + (p - 1) * wn, n, k).noalias() =
          gm.middleRows(r0, r1 - r0).transpose() * ConstMatMap(xr, r1 - r0, k);
    }
  }
  for (int64_t p = 1; p < parts; ++p) {
    const float* src = extra.get() + (p - 1) * wn;
#pragma omp parallel for simd schedule(static) if (wn > (1 << 16))
    for (int64_t i = 0; i < wn; ++i) dw[i] += src[i];
  }
}

// y [m, n] = x w^T (+ bias), x's row blocks gathered from its parts.
void forward_rows(const ChannelParts& x, int64_t m, const ConstMatMap& wm, const float* pb, float* py) {
  const int64_t k = x.total, n = wm.rows();
  for_row_blocks(m, [&](int64_t r0, int64_t r1) {
    MatMap ym(py + r0 * n, r1 - r0, n);
    // Starting from the broadcast bias lets the GEMM accumulate onto it: one pass over y.
    if (pb)
      ym.rowwise() = ConstVecMap(pb, n);
    else
      ym.setZero();
    std::unique_ptr<RowBuffer> rows;
    const float* xr = x.part[0] + r0 * k;
    if (!x.plain()) {
      rows.reset(new RowBuffer(r1 - r0, k));
      x.gather(r0, r1 - r0, rows->at(r0));
      xr = rows->at(r0);
    }
    ym.noalias() += ConstMatMap(xr, r1 - r0, k) * wm.transpose();
  });
}

// dx = dy w, each row block scattered into dx's parts.
void dx_rows(const ConstMatMap& gm, const ConstMatMap& wm, const ChannelPartsOut& dx) {
  const int64_t m = gm.rows(), k = wm.cols();
  for_row_blocks(m, [&](int64_t r0, int64_t r1) {
    if (dx.plain()) {
      MatMap(dx.part[0] + r0 * k, r1 - r0, k).noalias() = gm.middleRows(r0, r1 - r0) * wm;
      return;
    }
    const RowBuffer rows(r1 - r0, k);
    MatMap(rows.at(r0), r1 - r0, k).noalias() = gm.middleRows(r0, r1 - r0) * wm;
    dx.scatter(rows.at(r0), r0, r1 - r0);
  });
}

std::vector<Tensor> rounded_all(const std::vector<Tensor>& xs, OperandRounding r) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(rounded(x, r));
  return out;
}

ChannelParts view_of(const std::vector<Tensor>& xs) {
  ChannelParts v;
  for (const Tensor& x : xs) v.add(x.data(), x.dim(1));
  return v;
}
}  // namespace

Tensor linear_forward_view(const ChannelParts& x, int64_t m, const Tensor& w_in, const Tensor& bias) {
  // cuBLAS's operands are tf32 under TF32, bf16 under BF16 (kernels/cpu/operand_rounding.h); x's
  // tensors are the caller's.
  const Tensor w = rounded(w_in, gemm_rounding(current_context().precision()));
  const int64_t n = w.dim(0);
  Tensor y = Tensor::empty({m, n});
  forward_rows(x, m, ConstMatMap(w.data(), n, w.dim(1)), bias.defined() ? bias.data() : nullptr, y.data());
  return y;
}

void linear_backward_view(const ChannelParts& x, int64_t m, const Tensor& w_in, const Tensor& dy_in,
                          const ChannelPartsOut* dx, Tensor* dw) {
  const OperandRounding r = gemm_rounding(current_context().precision());
  const Tensor w = dx ? rounded(w_in, r) : w_in;
  const Tensor dy = rounded(dy_in, r);
  const int64_t k = w.dim(1), n = w.dim(0);
  const ConstMatMap wm(w.data(), n, k), gm(dy.data(), m, n);
  if (dx) dx_rows(gm, wm, *dx);
  if (dw) {
    *dw = Tensor::empty({n, k});
    weight_grad(gm, x, dw->data());
  }
}

Tensor linear_forward_parts(const std::vector<Tensor>& xs_in, const Tensor& w, const Tensor& bias) {
  const std::vector<Tensor> xs = rounded_all(xs_in, gemm_rounding(current_context().precision()));
  return linear_forward_view(view_of(xs), xs.front().dim(0), w, bias);
}

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  return linear_forward_parts({x}, w, bias);
}

LinearPartsGrads linear_backward_parts(const std::vector<Tensor>& xs_in, const Tensor& w, const Tensor& dy,
                                       bool need_dx, bool need_dw) {
  const OperandRounding r = gemm_rounding(current_context().precision());
  const std::vector<Tensor> xs = rounded_all(xs_in, need_dw ? r : OperandRounding::None);
  LinearPartsGrads g;
  ChannelPartsOut dx;
  if (need_dx)
    for (const Tensor& x : xs_in) {
      g.dx.push_back(Tensor::empty(x.shape()));
      dx.add(g.dx.back().data(), x.dim(1));
    }
  if (need_dx || need_dw)
    linear_backward_view(view_of(xs), dy.dim(0), w, dy, need_dx ? &dx : nullptr, need_dw ? &g.dw : nullptr);
  return g;
}

LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
                            bool need_dbias) {
  LinearPartsGrads p = linear_backward_parts({x}, w, dy, need_dx, need_dw);
  LinearGrads g;
  if (need_dx) g.dx = std::move(p.dx.front());
  g.dw = std::move(p.dw);
  if (need_dbias) {
    g.dbias = Tensor::empty({w.dim(0)});
    column_sums(dy.data(), dy.dim(0), w.dim(0), g.dbias.data());
  }
  return g;
}

}  // namespace dd::kernels::cpu
