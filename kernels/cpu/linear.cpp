#include "kernels/linear.h"

#include "kernels/cpu/gemm.h"

namespace dd::kernels::cpu {

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
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

LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
                            bool need_dbias) {
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
    column_sums(dy.data(), m, n, g.dbias.data());
  }
  return g;
}

}  // namespace dd::kernels::cpu
