#pragma once
// What a stride-1 conv reads of its input x and keeps of it for its backward (dw reads x).
//
// Under Precision::BF16 the conv rounds x to bf16 before anything reads it, in the forward and in
// dw (kernels/cpu/operand_rounding.h; the GPU's tensor-core pack), so while recording it takes and
// keeps x.bf16_value() instead of x: the same results bit for bit, half the bytes kept, and one copy
// whichever convs read x (a ResnetBlock's input and skip feed its first conv and its res_conv). Once
// no backward reads x's fp32 value it is freed with its variable. On the GPU the tensor-core conv
// reads the bf16 copy as its operand instead of packing x again in the forward and in dw.
// Otherwise (fp32, tf32, nothing recorded, a value that is not fp32) it is x.value() itself.
// set_keep_bf16_conv_inputs(false) keeps x itself in every policy (on by default; process-wide):
// bench_train_step --keep-fp32 measures the saving, and the tests check the results are the same.
#include <atomic>

#include "autograd/var.h"
#include "engine/context.h"

namespace dd::ag {

inline std::atomic<bool>& keep_bf16_conv_inputs_flag() {
  static std::atomic<bool> on{true};
  return on;
}
inline void set_keep_bf16_conv_inputs(bool on) { keep_bf16_conv_inputs_flag().store(on); }

inline Tensor conv_input(const Var& x, bool recording) {
  if (recording && current_context().precision() == Precision::BF16 && x.value().dtype() == DType::F32 &&
      keep_bf16_conv_inputs_flag().load(std::memory_order_relaxed))
    return x.bf16_value();
  return x.value();
}

// Whether a stride-1 conv reads its input rounded to bf16 under the current policy (BF16), recording
// or not: then a producer whose one consumer is such a conv may write its output in bf16 for the
// same results (models/unet.cpp: the PreNorms, the linear attention's output and each ResnetBlock's
// first Block, each read by one conv). Off under
// set_keep_bf16_conv_inputs(false), which measures the fp32 activations (bench_train_step --keep-fp32).
inline bool conv_reads_bf16() {
  return current_context().precision() == Precision::BF16 && keep_bf16_conv_inputs_flag().load(std::memory_order_relaxed);
}

// The Block's weight, likewise: under BF16 its conv rounds w to bf16 in the forward and in dx, so
// while recording the Block keeps w.bf16_value() when w is made by the forward (the standardised
// weight, otherwise kept in fp32 for this backward alone): the same results bit for bit, and its
// fp32 value is freed with the forward. A parameter (its gradient lives in a parameter set's arena)
// or a w that needs no gradient keeps its own value, which persists anyway: a copy would only add.
inline Tensor conv_weight(const Var& w, bool recording) {
  if (recording && current_context().precision() == Precision::BF16 && w.value().dtype() == DType::F32 &&
      w.requires_grad() && !w.grad_buffer().defined() && keep_bf16_conv_inputs_flag().load(std::memory_order_relaxed))
    return w.bf16_value();
  return w.value();
}

// The GroupNorms' inputs are kept for the backward rounded to bf16 under Precision::BF16 while
// recording, as autocast keeps a bf16 conv output: the Block op's, its conv's output h
// (autograd/conv2d_norm_act.h, kernels/conv2d_norm_act.h's bf16_h), and group_norm's and
// group_norm_act's x (norm_input below: x.bf16_value(), shared with the convs that read x, so the
// PreNorm's input, which a skip conv also reads, is kept once in bf16 and its fp32 value freed).
// The forward reads the exact input either way; unlike the conv inputs above the gradients change
// (they are those at the rounded input), so this has its own switch: set_keep_bf16_norm_inputs(false)
// keeps them in fp32 (on by default; process-wide).
inline std::atomic<bool>& keep_bf16_norm_inputs_flag() {
  static std::atomic<bool> on{true};
  return on;
}
inline void set_keep_bf16_norm_inputs(bool on) { keep_bf16_norm_inputs_flag().store(on); }

inline bool keep_norm_input_bf16(bool recording) {
  return recording && current_context().precision() == Precision::BF16 &&
         keep_bf16_norm_inputs_flag().load(std::memory_order_relaxed);
}

// What a GroupNorm's backward keeps of its input x while recording.
inline Tensor norm_input(const Var& x) {
  if (keep_norm_input_bf16(true) && x.value().dtype() == DType::F32) return x.bf16_value();
  return x.value();
}

}  // namespace dd::ag
