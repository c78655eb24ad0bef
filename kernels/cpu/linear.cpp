#include "kernels/linear.h"

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/operand_rounding.h"

namespace dd::kernels::cpu {

Tensor linear_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias) {
  // cuBLAS rounds to tf32 under TF32/BF16 (kernels/cpu/operand_rounding.h).
  const OperandRounding r = gemm_rounding(current_context().precision());
  const Tensor x = rounded(x_in, r), w = rounded(w_in, r);
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  Tensor y = Tensor::empty({m, n});
  MatMap ym(y.data(), m, n);
  ConstMatMap xm(x.data(), m, k), wm(w.data(), n, k);
  // Starting from the broadcast bias lets the GEMM accumulate onto it: one pass over y.
  if (bias.defined())
    ym.rowwise() = ConstVecMap(bias.data(), n);
  else
    ym.setZero();
  ym.noalias() += xm * wm.transpose();
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
    MatMap(g.dx.data(), m, k).noalias() = gm * wm;
  }
  if (need_dw) {
    g.dw = Tensor::empty({n, k});
    MatMap(g.dw.data(), n, k).noalias() = gm.transpose() * xm;
  }
  if (need_dbias) {
    g.dbias = Tensor::empty({n});
    column_sums(dy_in.data(), m, n, g.dbias.data());
  }
  return g;
}

}  // namespace dd::kernels::cpu
