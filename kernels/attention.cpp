#include "kernels/attention.h"

#include "kernels/dispatch.h"
#include "kernels/qkv_checks.h"

namespace dd::kernels {

bool attention_tc_supported(int64_t dim_head) { return dim_head == 32 || dim_head == 64 || dim_head == 128; }

Tensor attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  check_qkv("attention", qkv, heads, dim_head);
  DD_DISPATCH(common_device("attention", {&qkv}), attention_forward, qkv, heads, dim_head);
}

Tensor attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  check_qkv("attention_backward", qkv, heads, dim_head);
  check_dy("attention_backward", qkv, dy, heads, dim_head);
  DD_DISPATCH(common_device("attention_backward", {&qkv, &dy}), attention_backward, qkv, dy, heads, dim_head);
}

}  // namespace dd::kernels
