// Linear attention on the GPU; the kernels and their launch plans are in
// linear_attention_kernels.cuh (shared with the CPU-side emulation test).
#include "engine/context.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/linear_attention_kernels.cuh"
#include "kernels/linear_attention.h"

namespace dd::kernels::cuda {

namespace {
struct Launcher {
  template <class Kernel>
  void operator()(Kernel kernel, unsigned blocks, int threads, const char* name, const linattn::Params& p) const {
    kernel<<<blocks, threads, 0, stream()>>>(p);
    (void)name;  // DD_CUDA_LAUNCH_CHECK reports the file and line, not the name
    DD_CUDA_LAUNCH_CHECK(name);
  }
};

// The same rule the CPU backend models (kernels/cpu/operand_rounding.h).
bool use_tc(int64_t d) { return linear_attention_rounds_to_bf16(current_context().precision(), d); }

template <bool kBackward>
Tensor run(const char* op, const Tensor& qkv, const Tensor* dy, int64_t heads, int64_t dim_head) {
  Shape out_shape = qkv.shape();
  if (!kBackward) out_shape.back() = heads * dim_head;
  Tensor out = Tensor::empty(out_shape, qkv.device());
  const int64_t B = qkv.dim(0), N = qkv.numel() / (qkv.dim(0) * qkv.dim(-1));
  Tensor scratch = Tensor::empty({linattn::scratch_floats(B, heads, dim_head)}, qkv.device());
  const linattn::Params p = linattn::make_params(op, qkv.data(), dy ? dy->data() : nullptr, out.data(),
                                                 scratch.data(), B, N, heads, dim_head);
  linattn::plan<kBackward>(p, B, Launcher{});
  return out;
}
}  // namespace

// The fp32 kernels read a bf16 qkv widened (exactly).
Tensor linear_attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  if (use_tc(dim_head)) return linear_attention_forward_tc(qkv, heads, dim_head);
  return run<false>("linear_attention_forward", qkv.to(DType::F32), nullptr, heads, dim_head);
}

Tensor linear_attention_forward_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  if (use_tc(dim_head)) return linear_attention_forward_tc_bf16(qkv, heads, dim_head);
  return linear_attention_forward(qkv, heads, dim_head).to(DType::BF16);
}

Tensor linear_attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  if (use_tc(dim_head)) return linear_attention_backward_tc(qkv, dy, heads, dim_head);
  return run<true>("linear_attention_backward", qkv.to(DType::F32), &dy, heads, dim_head);
}

}  // namespace dd::kernels::cuda
