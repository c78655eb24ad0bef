#include "bench/cudnn_conv.h"

#include <cudnn.h>

#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "engine/error.h"

#define DD_CUDNN_CHECK(call)                                                                    \
  do {                                                                                          \
    cudnnStatus_t dd_st_ = (call);                                                              \
    if (dd_st_ != CUDNN_STATUS_SUCCESS)                                                         \
      ::dd::throw_error(__FILE__, __LINE__, ::dd::str_cat(#call, " failed: ", cudnnGetErrorString(dd_st_))); \
  } while (0)

namespace dd::bench {

namespace {
// Bound to the current context's stream at every call: the tensor-core tables run in their own
// Context (another stream), and events on that stream timed nothing of cuDNN's work on the first
// context's (the first GPU run, 2026-11-27, reported cuDNN TF32 at 6000 TFLOP/s).
cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t x;
    DD_CUDNN_CHECK(cudnnCreate(&x));
    return x;
  }();
  DD_CUDNN_CHECK(cudnnSetStream(h, cuda_stream()));
  return h;
}

cudnnTensorDescriptor_t nhwc(int64_t n, int64_t c, int64_t h, int64_t w, cudnnDataType_t type) {
  cudnnTensorDescriptor_t d;
  DD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  DD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NHWC, type, int(n), int(c), int(h), int(w)));
  return d;
}

// The fastest successful result whose math type is the one asked for (Find reports times sorted).
template <typename Perf>
Perf pick(const Perf* p, int n, cudnnMathType_t math, const char* what) {
  for (int i = 0; i < n; ++i)
    if (p[i].status == CUDNN_STATUS_SUCCESS && p[i].mathType == math) return p[i];
  for (int i = 0; i < n; ++i)
    if (p[i].status == CUDNN_STATUS_SUCCESS) return p[i];
  throw_error(__FILE__, __LINE__, str_cat("cudnn: no ", what, " algorithm succeeded"));
}
}  // namespace

struct CudnnConv::Impl {
  cudnnTensorDescriptor_t x, y, b;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t bwd_data;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter;
  Tensor ws_fwd, ws_data, ws_filter;
  std::size_t n_fwd = 0, n_data = 0, n_filter = 0;
};

CudnnConv::CudnnConv(const ConvShape& s, int64_t batch, CudnnMode mode) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const int64_t ho = s.h + 2 * s.pad - s.k + 1, wo = s.w + 2 * s.pad - s.k + 1;
  const cudnnDataType_t type = mode == CudnnMode::BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  m.x = nhwc(batch, s.ci, s.h, s.w, type);
  m.y = nhwc(batch, s.co, ho, wo, type);
  m.b = nhwc(1, s.co, 1, 1, type);
  DD_CUDNN_CHECK(cudnnCreateFilterDescriptor(&m.w));
  DD_CUDNN_CHECK(cudnnSetFilter4dDescriptor(m.w, type, CUDNN_TENSOR_NHWC, int(s.co), int(s.ci), int(s.k), int(s.k)));
  DD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&m.conv));
  // The compute (accumulation) type is fp32 in every mode.
  DD_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(m.conv, int(s.pad), int(s.pad), 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
  const cudnnMathType_t math = mode == CudnnMode::FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  DD_CUDNN_CHECK(cudnnSetConvolutionMathType(m.conv, math));

  constexpr int kMax = 16;
  int n = 0;
  cudnnConvolutionFwdAlgoPerf_t pf[kMax];
  DD_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle(), m.x, m.w, m.conv, m.y, kMax, &n, pf));
  auto f = pick(pf, n, math, "forward");
  m.fwd = f.algo;
  m.n_fwd = f.memory;
  cudnnConvolutionBwdDataAlgoPerf_t pd[kMax];
  DD_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(handle(), m.w, m.y, m.conv, m.x, kMax, &n, pd));
  auto d = pick(pd, n, math, "backward-data");
  m.bwd_data = d.algo;
  m.n_data = d.memory;
  cudnnConvolutionBwdFilterAlgoPerf_t pw[kMax];
  DD_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(handle(), m.x, m.y, m.conv, m.w, kMax, &n, pw));
  auto w = pick(pw, n, math, "backward-filter");
  m.bwd_filter = w.algo;
  m.n_filter = w.memory;
  auto ws = [](std::size_t bytes) {
    return Tensor::empty({static_cast<int64_t>(std::max<std::size_t>(bytes, 4) / 4 + 1)}, Device::CUDA);
  };
  m.ws_fwd = ws(m.n_fwd);
  m.ws_data = ws(m.n_data);
  m.ws_filter = ws(m.n_filter);
}

CudnnConv::~CudnnConv() {
  cudnnDestroyTensorDescriptor(impl_->x);
  cudnnDestroyTensorDescriptor(impl_->y);
  cudnnDestroyTensorDescriptor(impl_->b);
  cudnnDestroyFilterDescriptor(impl_->w);
  cudnnDestroyConvolutionDescriptor(impl_->conv);
}

void CudnnConv::forward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  Impl& m = *impl_;
  const float one = 1.0f, zero = 0.0f;
  DD_CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, m.x, x.raw_data(), m.w, w.raw_data(), m.conv, m.fwd,
                                         m.ws_fwd.data(), m.n_fwd, &zero, m.y, y.raw_data()));
  if (bias.defined()) DD_CUDNN_CHECK(cudnnAddTensor(handle(), &one, m.b, bias.raw_data(), &one, m.y, y.raw_data()));
}

void CudnnConv::backward_data(const Tensor& w, const Tensor& dy, Tensor& dx) {
  Impl& m = *impl_;
  const float one = 1.0f, zero = 0.0f;
  DD_CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), &one, m.w, w.raw_data(), m.y, dy.raw_data(), m.conv, m.bwd_data,
                                              m.ws_data.data(), m.n_data, &zero, m.x, dx.raw_data()));
}

void CudnnConv::backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& dbias) {
  Impl& m = *impl_;
  const float one = 1.0f, zero = 0.0f;
  DD_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), &one, m.x, x.raw_data(), m.y, dy.raw_data(), m.conv, m.bwd_filter,
                                                m.ws_filter.data(), m.n_filter, &zero, m.w, dw.raw_data()));
  if (dbias.defined())
    DD_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle(), &one, m.y, dy.raw_data(), &zero, m.b, dbias.raw_data()));
}

std::string CudnnConv::algos() const {
  return str_cat(int(impl_->fwd), "/", int(impl_->bwd_data), "/", int(impl_->bwd_filter));
}

}  // namespace dd::bench
