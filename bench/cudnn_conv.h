#pragma once
// cuDNN as the yardstick for our convolutions (bench/ only; the engine never links cuDNN).
// Same layouts as ours: x/y/dy NHWC, w KRSC (= our OHWI), bias [Co]; fp32 tensors, or bf16 ones
// (every tensor, bias included) in BF16 mode. For each direction the fastest algorithm cudnnFind*
// measures is kept, with its workspace allocated once.
#include <memory>
#include <string>

#include "bench/unet_conv_shapes.h"
#include "engine/tensor.h"

namespace dd::bench {

// FP32: CUDNN_FMA_MATH (true fp32, as our SIMT kernels). TF32: fp32 tensors, CUDNN_TENSOR_OP_MATH
// (TF32 tensor cores allowed). BF16: bf16 tensors, fp32 compute type, tensor-op math (what
// PyTorch's bf16 autocast hands cuDNN).
enum class CudnnMode { FP32, TF32, BF16 };

class CudnnConv {
 public:
  CudnnConv(const ConvShape& s, int64_t batch, CudnnMode mode);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  void forward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y);  // y = conv + bias
  void backward_data(const Tensor& w, const Tensor& dy, Tensor& dx);
  void backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& dbias);  // dbias if defined
  std::string algos() const;  // "fwd/bwd-data/bwd-filter" algorithm numbers picked

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dd::bench
