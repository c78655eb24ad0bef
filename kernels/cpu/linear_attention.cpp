#include "kernels/linear_attention.h"

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/operand_rounding.h"

#include <cmath>

namespace dd::kernels::cpu {

namespace {
using ColVec = Eigen::Matrix<float, Eigen::Dynamic, 1>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;

// Below this much work a call is not worth waking the thread team.
constexpr int64_t kParallelMin = 1 << 16;

struct Dims {
  int64_t B, N, heads, D, hidden, C;
  Dims(const Tensor& qkv, int64_t heads_, int64_t dim_head)
      : B(qkv.dim(0)),
        N(qkv.numel() / (qkv.dim(0) * qkv.dim(-1))),
        heads(heads_),
        D(dim_head),
        hidden(heads_ * dim_head),
        C(qkv.dim(-1)) {}
  Shape out_shape(const Tensor& qkv) const {
    Shape s = qkv.shape();
    s.back() = hidden;
    return s;
  }
  int64_t work() const { return B * heads * N * D * (D + 8); }
};

// exp() over a whole contiguous buffer: one flat pass that Eigen vectorizes
// (the broadcasting expressions below fall back to scalar expf).
void exp_inplace(RowMat& m) {
  Eigen::Map<Eigen::ArrayXf> flat(m.data(), m.size());
  flat = flat.exp();
}

// The softmaxes of one head, max-subtracted so large activations stay finite:
// sq = softmax of each row of q (over the features; scale applied later),
// sk = softmax of each column of k (over the positions).
void softmaxes(const ConstSlice& q, const ConstSlice& k, RowMat& sq, RowMat& sk) {
  sq = q;
  const ColVec row_max = sq.rowwise().maxCoeff();
  sq.colwise() -= row_max;
  exp_inplace(sq);
  const ColVec row_inv = sq.rowwise().sum().cwiseInverse();
  sq.array().colwise() *= row_inv.array();

  sk = k;
  RowVec col_max = sk.row(0);
  for (Eigen::Index n = 1; n < sk.rows(); ++n) col_max = col_max.cwiseMax(sk.row(n));
  sk.rowwise() -= col_max;
  exp_inplace(sk);
  // Position sums in double: N reaches thousands at the top level of the U-Net.
  Eigen::RowVectorXd col_sum = Eigen::RowVectorXd::Zero(sk.cols());
  for (Eigen::Index n = 0; n < sk.rows(); ++n) col_sum += sk.row(n).cast<double>();
  const RowVec col_inv = col_sum.cwiseInverse().cast<float>();
  sk.array().rowwise() *= col_inv.array();
}
}  // namespace

Tensor linear_attention_forward(const Tensor& qkv_in, int64_t heads, int64_t dim_head) {
  // Under BF16 (dim_head 32, 64) the inputs the GPU's tensor-core kernels round
  // (kernels/cpu/operand_rounding.h); the sums stay fp32.
  const Tensor qkv = rounded(qkv_in, linear_attention_rounding(current_context().precision(), dim_head));
  const Dims d(qkv, heads, dim_head);
  Tensor out = Tensor::empty(d.out_shape(qkv));
  const float* in = qkv.data();
  float* po = out.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  const int64_t tasks = d.B * d.heads;
#pragma omp parallel if (tasks > 1 && d.work() > kParallelMin)
  {
    RowMat sq, sk, context;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / d.heads, h = t % d.heads;
      const float* base = in + b * d.N * d.C + h * d.D;
      const Eigen::OuterStride<> sc(d.C);
      ConstSlice q(base, d.N, d.D, sc), k(base + d.hidden, d.N, d.D, sc),
          v(base + 2 * d.hidden, d.N, d.D, sc);
      Slice o(po + b * d.N * d.hidden + h * d.D, d.N, d.D, Eigen::OuterStride<>(d.hidden));
      softmaxes(q, k, sq, sk);
      context.noalias() = sk.transpose() * v;  // [d, e]
      o.noalias() = scale * (sq * context);
    }
  }
  return out;
}

// With S = softmax_d(q), K' = softmax_n(k), Q' = scale S, G = dy:
//   dQ' = G context^T,  dcontext = Q'^T G,  dK' = V dcontext^T,  dV = K' dcontext,
//   dq = scale S * (dQ' - rowsum(S * dQ')),  dk = K' * (dK' - colsum(K' * dK')).
Tensor linear_attention_forward_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  return linear_attention_forward(qkv, heads, dim_head).to(DType::BF16);
}

Tensor linear_attention_backward(const Tensor& qkv_in, const Tensor& dy_in, int64_t heads, int64_t dim_head) {
  const OperandRounding r = linear_attention_rounding(current_context().precision(), dim_head);
  const Tensor qkv = rounded(qkv_in, r), dy = rounded(dy_in, r);
  const Dims d(qkv, heads, dim_head);
  Tensor dqkv = Tensor::empty(qkv.shape());
  const float* in = qkv.data();
  const float* pg = dy.data();
  float* pd = dqkv.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  const int64_t tasks = d.B * d.heads;
#pragma omp parallel if (tasks > 1 && 3 * d.work() > kParallelMin)
  {
    RowMat sq, sk, context, dcontext, dsq, dsk;
    ColVec rowdot;
    RowVec coldot;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / d.heads, h = t % d.heads;
      const float* base = in + b * d.N * d.C + h * d.D;
      float* dbase = pd + b * d.N * d.C + h * d.D;
      const Eigen::OuterStride<> sc(d.C);
      ConstSlice q(base, d.N, d.D, sc), k(base + d.hidden, d.N, d.D, sc),
          v(base + 2 * d.hidden, d.N, d.D, sc);
      ConstSlice g(pg + b * d.N * d.hidden + h * d.D, d.N, d.D, Eigen::OuterStride<>(d.hidden));
      Slice dq(dbase, d.N, d.D, sc), dk(dbase + d.hidden, d.N, d.D, sc),
          dv(dbase + 2 * d.hidden, d.N, d.D, sc);
      softmaxes(q, k, sq, sk);
      context.noalias() = sk.transpose() * v;
      dsq.noalias() = g * context.transpose();
      dcontext.noalias() = scale * (sq.transpose() * g);
      dsk.noalias() = v * dcontext.transpose();
      dv.noalias() = sk * dcontext;
      rowdot = sq.cwiseProduct(dsq).rowwise().sum();
      dq = scale * (sq.array() * (dsq.colwise() - rowdot).array()).matrix();
      coldot = sk.cwiseProduct(dsk).cast<double>().colwise().sum().cast<float>();
      dk = (sk.array() * (dsk.rowwise() - coldot).array()).matrix();
    }
  }
  return dqkv;
}

}  // namespace dd::kernels::cpu
