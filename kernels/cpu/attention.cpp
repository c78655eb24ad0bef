#include "kernels/attention.h"

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/operand_rounding.h"

#include <algorithm>
#include <cmath>

namespace dd::kernels::cpu {

namespace {
using ColVec = Eigen::Matrix<float, Eigen::Dynamic, 1>;

// Query rows per block of sim: bounds the per-thread scratch at kRows x N
// (nothing N x N at large N) and gives the forward work to split when
// B * heads is smaller than the thread count.
constexpr int64_t kRows = 64;
// Below this many multiply-adds a call is not worth waking the thread team.
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
};

// In place: each row of s becomes softmax(row). Subtracting the row max keeps
// exp() finite for large logits, exactly as the seed's detached amax. exp()
// runs as one flat pass over the buffer, which Eigen vectorizes (per-row
// expressions fell back to scalar expf).
void softmax_rows(RowMat& s) {
  const ColVec row_max = s.rowwise().maxCoeff();
  s.colwise() -= row_max;
  Eigen::Map<Eigen::ArrayXf> flat(s.data(), s.size());
  flat = flat.exp();
  const ColVec row_inv = s.rowwise().sum().cwiseInverse();
  s.array().colwise() *= row_inv.array();
}
}  // namespace

Tensor attention_forward(const Tensor& qkv_in, int64_t heads, int64_t dim_head) {
  // Under BF16/TF32 the operands the GPU's kernels round (kernels/cpu/operand_rounding.h); the
  // softmax and the sums stay fp32 here (the tensor-core kernel also rounds P to bf16 for P V: the
  // GPU tests' bound covers that).
  const Tensor qkv = rounded(qkv_in, attention_rounding(current_context().precision(), dim_head));
  const Dims d(qkv, heads, dim_head);
  Tensor out = Tensor::empty(d.out_shape(qkv));
  const float* in = qkv.data();
  float* po = out.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  const int64_t blocks = (d.N + kRows - 1) / kRows;
  const int64_t tasks = d.B * d.heads * blocks;
  const int64_t work = 2 * d.B * d.heads * d.N * d.N * d.D;
#pragma omp parallel if (tasks > 1 && work > kParallelMin)
  {
    RowMat p;  // one block of sim, then of attn; reused across this thread's tasks
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / blocks, b = bh / d.heads, h = bh % d.heads;
      const int64_t i0 = (t % blocks) * kRows, rows = std::min(kRows, d.N - i0);
      const float* base = in + b * d.N * d.C + h * d.D;
      ConstSlice q(base + i0 * d.C, rows, d.D, Eigen::OuterStride<>(d.C));
      ConstSlice k(base + d.hidden, d.N, d.D, Eigen::OuterStride<>(d.C));
      ConstSlice v(base + 2 * d.hidden, d.N, d.D, Eigen::OuterStride<>(d.C));
      Slice o(po + (b * d.N + i0) * d.hidden + h * d.D, rows, d.D, Eigen::OuterStride<>(d.hidden));
      p.resize(rows, d.N);
      p.noalias() = (scale * q) * k.transpose();
      softmax_rows(p);
      o.noalias() = p * v;
    }
  }
  return out;
}

// Per (b, head), block by block of query rows i (P = attn, dO = dy):
//   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),
//   dQ = scale dS K,  dK += scale dS^T Q.
// dK and dV sum over every query block, so one thread owns a whole head and
// adds its blocks in a fixed order: deterministic without float atomics.
Tensor attention_backward(const Tensor& qkv_in, const Tensor& dy_in, int64_t heads, int64_t dim_head) {
  const OperandRounding r = attention_rounding(current_context().precision(), dim_head);
  const Tensor qkv = rounded(qkv_in, r), dy = rounded(dy_in, r);
  const Dims d(qkv, heads, dim_head);
  Tensor dqkv = Tensor::empty(qkv.shape());
  const float* in = qkv.data();
  const float* pg = dy.data();
  float* pd = dqkv.data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  const int64_t tasks = d.B * d.heads;
  const int64_t work = 5 * d.B * d.heads * d.N * d.N * d.D;
#pragma omp parallel if (tasks > 1 && work > kParallelMin)
  {
    RowMat p, dp;
    ColVec delta;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / d.heads, h = t % d.heads;
      const float* base = in + b * d.N * d.C + h * d.D;
      float* dbase = pd + b * d.N * d.C + h * d.D;
      const Eigen::OuterStride<> sc(d.C), sh(d.hidden);
      ConstSlice k(base + d.hidden, d.N, d.D, sc), v(base + 2 * d.hidden, d.N, d.D, sc);
      Slice dk(dbase + d.hidden, d.N, d.D, sc), dv(dbase + 2 * d.hidden, d.N, d.D, sc);
      dk.setZero();
      dv.setZero();
      for (int64_t i0 = 0; i0 < d.N; i0 += kRows) {
        const int64_t rows = std::min(kRows, d.N - i0);
        ConstSlice q(base + i0 * d.C, rows, d.D, sc);
        ConstSlice g(pg + (b * d.N + i0) * d.hidden + h * d.D, rows, d.D, sh);
        Slice dq(dbase + i0 * d.C, rows, d.D, sc);
        p.resize(rows, d.N);
        p.noalias() = (scale * q) * k.transpose();
        softmax_rows(p);
        dv.noalias() += p.transpose() * g;
        dp.resize(rows, d.N);
        dp.noalias() = g * v.transpose();
        delta = p.cwiseProduct(dp).rowwise().sum();
        dp = (p.array() * (dp.colwise() - delta).array()).matrix();
        dq.noalias() = scale * (dp * k);
        dk.noalias() += scale * (dp.transpose() * q);
      }
    }
  }
  return dqkv;
}

}  // namespace dd::kernels::cpu
