// Softmax attention on tensor cores in bf16 (kernels/attention.h: attention_forward_tc,
// attention_backward_tc), the BF16 precision path of kernels::cuda::attention_forward/backward;
// the fp32 flash kernels (attention.cu) stay the FP32 / TF32 path and the reference. The device
// code and its layout notes are in attention_tc_kernels.cuh.
//
// The forward is one launch; the backward three, in order: the stats pass (m, 1/l and delta per
// query row, from a recomputed forward), dK/dV (blocks own key rows), dQ (blocks own query rows).
// Nothing N x N is stored; every reduction runs in a fixed order, so results repeat bitwise.
//
// ptxas (scripts/ptxas_attention_tc.sh, CUDA 13, sm_90): registers per thread; 0 bytes of spill
// stores and loads and no stack frame in every kernel. Static shared memory in KB in brackets.
//   dim_head   forward     stats       dK/dV       dQ
//   32          91 (15.0)   79 (15.0)  168 (20.8)  128 (20.0)
//   64         102 (27.0)  104 (27.0)  183 (36.8)  127 (36.0)
//   128        126 (34.0)  128 (34.0)  238 (34.4)  162 (34.0)
// dK/dV at 128 holds two 16 x 128 fp32 accumulators per warp (dK, dV): 128 of its registers.
#include <type_traits>

#include "engine/error.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_tc_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
using attn_tc::Params;
using attn_tc::Tiles;

template <class F>
void with_tc_head_dim(const char* op, int64_t d, F&& f) {
  switch (d) {
    case 32: return f(std::integral_constant<int, 32>{});
    case 64: return f(std::integral_constant<int, 64>{});
    case 128: return f(std::integral_constant<int, 128>{});
  }
  DD_CHECK(false, op, ": the tensor-core kernels take dim_head 32, 64 or 128, got ", d);
}

int64_t positions(const Tensor& qkv) { return qkv.numel() / (qkv.dim(0) * qkv.dim(-1)); }

Params make_params(const char* op, const Tensor& qkv, int64_t heads, int64_t d) {
  DD_CHECK(qkv.ndim() >= 3 && heads >= 1 && qkv.dim(-1) == 3 * heads * d, op, ": qkv ", describe(qkv),
           " must be [B, ..., 3 * heads * dim_head] with heads ", heads, ", dim_head ", d);
  Params p{};
  p.qkv = qkv.data();
  p.N = positions(qkv);
  p.hidden = heads * d;
  p.C = 3 * p.hidden;
  p.heads = static_cast<int>(heads);
  p.d = static_cast<int>(d);
  p.scale = 1.0f / std::sqrt(static_cast<float>(d));
  return p;
}

// Blocks for `rows` owned rows per block; p.tiles is set to match.
unsigned blocks_for(const char* op, Params& p, int64_t B, int rows) {
  p.tiles = (p.N + rows - 1) / rows;
  const int64_t blocks = B * p.heads * p.tiles;
  DD_CHECK(blocks < (int64_t(1) << 31), op, ": too many blocks (B ", B, ", heads ", p.heads, ", N ", p.N, ")");
  return static_cast<unsigned>(blocks);
}
}  // namespace

Tensor attention_forward_tc(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  Params p = make_params("attention_forward_tc", qkv, heads, dim_head);
  Shape out_shape = qkv.shape();
  out_shape.back() = heads * dim_head;
  Tensor out = Tensor::empty(out_shape, qkv.device());
  if (p.N == 0) return out;
  p.out = out.data();
  const int64_t B = qkv.dim(0);
  with_tc_head_dim("attention_forward_tc", dim_head, [&](auto tag) {
    constexpr int kD = decltype(tag)::value;
    const unsigned blocks = blocks_for("attention_forward_tc", p, B, Tiles<kD>::kFwdRows);
    attn_tc::attention_tc_rows_kernel<kD, false><<<blocks, 32 * Tiles<kD>::kFwdWarps, 0, stream()>>>(p);
    DD_CUDA_LAUNCH_CHECK("attention_tc_rows_kernel");
  });
  return out;
}

Tensor attention_backward_tc(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  Params p = make_params("attention_backward_tc", qkv, heads, dim_head);
  Shape out_shape = qkv.shape();
  out_shape.back() = heads * dim_head;
  DD_CHECK(dy.shape() == out_shape, "attention_backward_tc: dy ", describe(dy), " must be ", shape_str(out_shape));
  Tensor dqkv = Tensor::empty(qkv.shape(), qkv.device());
  if (p.N == 0) return dqkv;
  const int64_t B = qkv.dim(0), rows = B * heads * p.N;
  Tensor stats = Tensor::empty({3 * rows}, qkv.device());
  p.dy = dy.data();
  p.out = dqkv.data();
  p.row_max = stats.data();
  p.row_inv = p.row_max + rows;
  p.row_delta = p.row_inv + rows;
  with_tc_head_dim("attention_backward_tc", dim_head, [&](auto tag) {
    constexpr int kD = decltype(tag)::value;
    using T = Tiles<kD>;
    unsigned blocks = blocks_for("attention_backward_tc", p, B, T::kFwdRows);
    attn_tc::attention_tc_rows_kernel<kD, true><<<blocks, 32 * T::kFwdWarps, 0, stream()>>>(p);
    DD_CUDA_LAUNCH_CHECK("attention_tc_stats_kernel");
    blocks = blocks_for("attention_backward_tc", p, B, T::kBwdRows);
    attn_tc::attention_tc_dkdv_kernel<kD><<<blocks, 32 * T::kBwdWarps, 0, stream()>>>(p);
    DD_CUDA_LAUNCH_CHECK("attention_tc_dkdv_kernel");
    attn_tc::attention_tc_dq_kernel<kD><<<blocks, 32 * T::kBwdWarps, 0, stream()>>>(p);
    DD_CUDA_LAUNCH_CHECK("attention_tc_dq_kernel");
  });
  return dqkv;
}

}  // namespace dd::kernels::cuda
