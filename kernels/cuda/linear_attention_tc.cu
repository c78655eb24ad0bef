// Linear attention on bf16 tensor cores (kernels/linear_attention.h: linear_attention_forward_tc,
// linear_attention_backward_tc), the BF16 precision path of kernels::cuda::linear_attention_* at
// dim_head 32 and 64; the fp32 kernels (linear_attention.cu) stay the FP32 / TF32 path and the
// reference. Device code and layout notes: linear_attention_tc_kernels.cuh. Each direction is two
// launches, the head kernel (a block per (batch, head)) then the rows kernel, through a scratch of
// k's column statistics, the context and dcontext as bf16, and (backward) coldot.
//
// ptxas (scripts/ptxas_attention_tc.sh, CUDA 13, sm_90): registers per thread, qkv fp32 / bf16;
// no spill stores or loads and no stack frame in any of them. Static shared memory in KB.
//   dim_head   head fwd        rows fwd        head bwd        rows bwd
//   32         108/126 (19.1)   88/116 (15.8)  182/180 (37.4)  115/116 (23.6)
//   64         127/148 (18.4)  162/128 (21.6)  231/232 (35.5)  209/209 (35.9)
#include <type_traits>

#include "engine/error.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/linear_attention_tc_kernels.cuh"
#include "kernels/linear_attention.h"

namespace dd::kernels::cuda {

namespace {
template <class T>
struct TypeTag {
  using type = T;
};

template <class F>
void with_tc_head_dim(const char* op, int64_t d, F&& f) {
  switch (d) {
    case 32: return f(std::integral_constant<int, 32>{});
    case 64: return f(std::integral_constant<int, 64>{});
  }
  DD_CHECK(false, op, ": the tensor-core kernels take dim_head 32 or 64, got ", d);
}

// out_dtype: the forward's output F32 or BF16.
template <bool kBackward>
Tensor run_tc(const char* op, const Tensor& qkv, const Tensor* dy, int64_t heads, int64_t dim_head,
              DType out_dtype = DType::F32) {
  DD_CHECK(qkv.ndim() >= 3 && heads >= 1 && qkv.dim(-1) == 3 * heads * dim_head, op, ": qkv ", describe(qkv),
           " must be [B, ..., 3 * heads * dim_head] with heads ", heads, ", dim_head ", dim_head);
  Shape out_shape = qkv.shape();
  if (!kBackward) out_shape.back() = heads * dim_head;
  if (kBackward) {
    Shape dy_shape = qkv.shape();
    dy_shape.back() = heads * dim_head;
    DD_CHECK(dy->shape() == dy_shape, op, ": dy ", describe(*dy), " must be ", shape_str(dy_shape));
  }
  const bool bf16_out = !kBackward && out_dtype == DType::BF16;
  Tensor out = Tensor::empty(out_shape, qkv.device(), bf16_out ? DType::BF16 : DType::F32);
  const int64_t B = qkv.dim(0), N = qkv.numel() / (qkv.dim(0) * qkv.dim(-1));
  if (N == 0) return out;
  // Scratch: context and dcontext as bf16 (BH d^2 words for both: 16-byte aligned from the start),
  // then kmax, kinv and coldot (BH d floats each).
  const int64_t BH = B * heads, d = dim_head;
  Tensor scratch = Tensor::empty({BH * d * d + 3 * BH * d}, qkv.device());
  // A bf16 qkv (conv2d_forward_bf16's, autograd/linear_attention.cpp) is read as it is.
  const bool bf16_in = qkv.dtype() == DType::BF16;
  DD_CHECK(bf16_in || qkv.dtype() == DType::F32, op, ": qkv ", describe(qkv), " must be float32 or bfloat16");
  linattn::Params p = linattn::make_params(op, bf16_in ? nullptr : qkv.data(), dy ? dy->data() : nullptr,
                                           bf16_out ? nullptr : out.data(), scratch.data(), B, N, heads, dim_head);
  if (bf16_in) p.qkv_bf = reinterpret_cast<const uint16_t*>(qkv.data<bf16>());
  if (bf16_out) p.out_bf = reinterpret_cast<uint16_t*>(out.data<bf16>());
  p.ctx_bf = reinterpret_cast<uint16_t*>(scratch.data());
  p.dctx_bf = p.ctx_bf + BH * d * d;
  p.kmax = scratch.data() + BH * d * d;
  p.kinv = p.kmax + BH * d;
  p.coldot = p.kinv + BH * d;
  p.ctx = p.dctx = nullptr;
  auto launch = [&](auto tag, auto in_tag) {
    constexpr int kD = decltype(tag)::value;
    using TQ = typename decltype(in_tag)::type;
    using T = linattn_tc::Tiles<kD>;
    p.tiles = (N + T::kRows - 1) / T::kRows;
    const auto heads_total = static_cast<unsigned>(B * heads);
    const auto row_blocks = static_cast<unsigned>(B * heads * p.tiles);
    constexpr int kHeadThreads = linattn_tc::kHeadThreads;
    linattn_tc::linear_attention_tc_head_kernel<kD, kBackward, TQ><<<heads_total, kHeadThreads, 0, stream()>>>(p);
    DD_CUDA_LAUNCH_CHECK("linear_attention_tc_head_kernel");
    linattn_tc::linear_attention_tc_rows_kernel<kD, kBackward, TQ><<<row_blocks, 32 * T::kRowWarps, 0, stream()>>>(p);
    DD_CUDA_LAUNCH_CHECK("linear_attention_tc_rows_kernel");
  };
  with_tc_head_dim(op, dim_head, [&](auto tag) {
    if (bf16_in)
      launch(tag, TypeTag<uint16_t>{});
    else
      launch(tag, TypeTag<float>{});
  });
  return out;
}
}  // namespace

Tensor linear_attention_forward_tc(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  return run_tc<false>("linear_attention_forward_tc", qkv, nullptr, heads, dim_head);
}

Tensor linear_attention_forward_tc_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  return run_tc<false>("linear_attention_forward_tc_bf16", qkv, nullptr, heads, dim_head, DType::BF16);
}

Tensor linear_attention_backward_tc(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  return run_tc<true>("linear_attention_backward_tc", qkv, &dy, heads, dim_head);
}

}  // namespace dd::kernels::cuda
