#include "kernels/qkv_checks.h"

#include "engine/error.h"

namespace dd::kernels {

void check_qkv(const char* op, const Tensor& qkv, int64_t heads, int64_t dim_head, bool bf16_ok) {
  DD_CHECK(qkv.defined(), op, ": qkv is undefined");
  DD_CHECK(qkv.dtype() == DType::F32 || (bf16_ok && qkv.dtype() == DType::BF16), op, ": qkv ", describe(qkv),
           bf16_ok ? " must be float32 or bfloat16" : " must be float32");
  DD_CHECK(qkv.ndim() == 3 || qkv.ndim() == 4, op, ": qkv ", describe(qkv),
           " must be [B, H, W, 3*heads*dim_head] or [B, N, 3*heads*dim_head]");
  DD_CHECK(heads >= 1 && dim_head >= 1, op, ": heads (", heads, ") and dim_head (", dim_head,
           ") must be positive");
  DD_CHECK(qkv.dim(-1) == 3 * heads * dim_head, op, ": qkv ", describe(qkv), " has ", qkv.dim(-1),
           " channels but 3 * heads (", heads, ") * dim_head (", dim_head, ") = ", 3 * heads * dim_head);
  DD_CHECK(qkv.numel() > 0, op, ": qkv ", describe(qkv), " is empty");
}

void check_dy(const char* op, const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  Shape expect = qkv.shape();
  expect.back() = heads * dim_head;
  DD_CHECK(dy.defined() && dy.shape() == expect, op, ": dy ", dy.defined() ? describe(dy) : "undefined",
           " must be ", shape_str(expect), " for qkv ", describe(qkv));
}

}  // namespace dd::kernels
