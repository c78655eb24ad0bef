#include "kernels/linear_attention.h"

#include "kernels/dispatch.h"
#include "kernels/qkv_checks.h"

namespace dd::kernels {

bool linear_attention_tc_supported(int64_t dim_head) { return dim_head == 32 || dim_head == 64; }

bool linear_attention_rounds_to_bf16(Precision p, int64_t dim_head) {
  return p == Precision::BF16 && linear_attention_tc_supported(dim_head);
}

Tensor linear_attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  check_qkv("linear_attention", qkv, heads, dim_head, true);
  DD_DISPATCH(common_device("linear_attention", {&qkv}), linear_attention_forward, qkv, heads, dim_head);
}

Tensor linear_attention_forward_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  check_qkv("linear_attention_forward_bf16", qkv, heads, dim_head, true);
  DD_DISPATCH(common_device("linear_attention_forward_bf16", {&qkv}), linear_attention_forward_bf16, qkv, heads,
              dim_head);
}

Tensor linear_attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  check_qkv("linear_attention_backward", qkv, heads, dim_head, true);
  check_dy("linear_attention_backward", qkv, dy, heads, dim_head);
  DD_DISPATCH(common_device("linear_attention_backward", {&qkv, &dy}), linear_attention_backward, qkv, dy,
              heads, dim_head);
}

}  // namespace dd::kernels
