#pragma once
// cuDNN as the yardstick for our convolutions (bench/ only; the engine never links cuDNN).
// Same layouts as ours: x/y/dy NHWC fp32, w KRSC (= our OHWI), bias [Co]. For each direction the
// fastest algorithm cudnnFind* measures is kept, with its workspace allocated once.
#include <memory>
#include <string>

#include "bench/unet_conv_shapes.h"
#include "engine/tensor.h"

namespace dd::bench {

class CudnnConv {
 public:
  // tf32: CUDNN_TENSOR_OP_MATH (TF32 tensor cores allowed); else CUDNN_FMA_MATH (true fp32, as ours).
  CudnnConv(const ConvShape& s, int64_t batch, bool tf32);
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
