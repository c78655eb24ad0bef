// Flash-style softmax attention on the GPU; the kernels and their launch plans
// are in attention_kernels.cuh (shared with the CPU-side emulation test).
#include "engine/context.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
struct Launcher {
  template <class Kernel>
  void operator()(Kernel kernel, unsigned blocks, int threads, const char* name, const attn::Params& p) const {
    kernel<<<blocks, threads, 0, stream()>>>(p);
    (void)name;  // DD_CUDA_LAUNCH_CHECK reports the file and line, not the name
    DD_CUDA_LAUNCH_CHECK(name);
  }
};

int64_t positions(const Tensor& qkv) { return qkv.numel() / (qkv.dim(0) * qkv.dim(-1)); }
// The same rule the CPU backend models (kernels/cpu/operand_rounding.h).
bool use_tc(int64_t d) { return current_context().precision() == Precision::BF16 && attention_tc_supported(d); }
}  // namespace

Tensor attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  if (use_tc(dim_head)) return attention_forward_tc(qkv, heads, dim_head);
  if (dim_head > attn::kMaxHeadDim) return attention_wide_forward(qkv, heads, dim_head);
  Shape out_shape = qkv.shape();
  out_shape.back() = heads * dim_head;
  Tensor out = Tensor::empty(out_shape, qkv.device());
  const int64_t B = qkv.dim(0), N = positions(qkv);
  const attn::Params p =
      attn::make_params("attention_forward", qkv.data(), nullptr, out.data(), nullptr, B, N, heads, dim_head);
  attn::forward_plan(p, B, Launcher{});
  return out;
}

Tensor attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  if (use_tc(dim_head)) return attention_backward_tc(qkv, dy, heads, dim_head);
  if (dim_head > attn::kMaxHeadDim) return attention_wide_backward(qkv, dy, heads, dim_head);
  Tensor dqkv = Tensor::empty(qkv.shape(), qkv.device());
  const int64_t B = qkv.dim(0), N = positions(qkv);
  Tensor stats = Tensor::empty({attn::backward_scratch_floats(B, N, heads)}, qkv.device());
  const attn::Params p = attn::make_params("attention_backward", qkv.data(), dy.data(), dqkv.data(), stats.data(),
                                           B, N, heads, dim_head);
  attn::backward_plan(p, B, Launcher{});
  return dqkv;
}

}  // namespace dd::kernels::cuda
