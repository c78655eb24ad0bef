#include "kernels/cpu/operand_rounding.h"

#include "engine/dtype.h"
#include "kernels/attention.h"
#include "kernels/linear_attention.h"

namespace dd::kernels::cpu {

OperandRounding conv_rounding(Precision p) {
  return p == Precision::BF16 ? OperandRounding::BF16 : p == Precision::TF32 ? OperandRounding::TF32 : OperandRounding::None;
}

OperandRounding gemm_rounding(Precision p) { return conv_rounding(p); }

OperandRounding attention_rounding(Precision p, int64_t dim_head) {
  if (attention_tc_supported(dim_head)) return p == Precision::BF16 ? OperandRounding::BF16 : OperandRounding::None;
  if (dim_head > 128) return p == Precision::FP32 ? OperandRounding::None : OperandRounding::TF32;
  return OperandRounding::None;
}

OperandRounding linear_attention_rounding(Precision p, int64_t dim_head) {
  return linear_attention_rounds_to_bf16(p, dim_head) ? OperandRounding::BF16 : OperandRounding::None;
}

Tensor rounded(const Tensor& t, OperandRounding r) {
  // A bf16 tensor (a conv input the tape keeps in bf16 under BF16) is widened exactly; both
  // roundings leave its values as they are (bf16's 7 mantissa bits fit tf32's 10).
  if (t.defined() && t.dtype() == DType::BF16) return t.to(DType::F32);
  if (r == OperandRounding::None || !t.defined()) return t;
  Tensor out = Tensor::empty(t.shape());
  const float* src = t.data();
  float* dst = out.data();
  const int64_t n = t.numel();
  if (r == OperandRounding::BF16) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) dst[i] = dtype_conv::round_bf16(src[i]);
  } else {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) dst[i] = dtype_conv::round_tf32(src[i]);
  }
  return out;
}

}  // namespace dd::kernels::cpu
