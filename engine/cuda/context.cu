// The CUDA side of engine/context.h: each context's stream and cuBLAS handle, made on first use.
#include <cublas_v2.h>

#include "engine/context.h"
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#include "engine/device.h"

#define DD_CONTEXT_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                                 \
    cublasStatus_t dd_st_ = (call);                                                                    \
    if (dd_st_ != CUBLAS_STATUS_SUCCESS)                                                               \
      ::dd::throw_error(__FILE__, __LINE__, ::dd::str_cat(#call, " failed: ", cublasGetStatusName(dd_st_))); \
  } while (0)

namespace dd {

struct ContextState {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  void* blas_workspace = nullptr;
};

namespace {
// cuBLAS's own recommendation for Hopper. Set explicitly so cuBLAS never allocates inside a captured
// graph, and the workspace comes from the engine's allocator like every other buffer.
constexpr std::size_t kBlasWorkspaceBytes = std::size_t(32) << 20;

cublasMath_t math_mode(Precision p) {
  // BF16 policy: cuBLAS's fp32 GEMMs stay on TF32 at most; bf16 operands are the tensor-core
  // kernels' business (issue 12).
  return p == Precision::FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_TF32_TENSOR_OP_MATH;
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int ordinal) {
    DD_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != ordinal) DD_CUDA_CHECK(cudaSetDevice(ordinal));
    ordinal_ = ordinal;
  }
  ~DeviceGuard() {
    if (prev_ != ordinal_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = 0, ordinal_ = 0;
};
}  // namespace

Context::Context(int device_ordinal) : device_(device_ordinal) {
  DD_CHECK(device_ordinal >= 0, "Context: device ordinal ", device_ordinal, " must be >= 0");
}

ContextState& Context::cuda_state() {
  if (!state_) {
    DeviceGuard guard(device_);
    auto s = std::make_unique<ContextState>();
    // Non-blocking: nothing on the legacy default stream can serialise against it, so every copy of
    // the engine goes on this stream too.
    DD_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    state_ = std::move(s);
  }
  return *state_;
}

Context::~Context() {
  if (!state_) return;
  if (state_->stream) cudaStreamSynchronize(state_->stream);
  if (state_->blas) cublasDestroy(state_->blas);
  if (state_->blas_workspace) cuda_mem::free(state_->blas_workspace);
  if (state_->stream) cudaStreamDestroy(state_->stream);
}

void Context::set_precision(Precision p) {
  precision_ = p;
  if (state_ && state_->blas) DD_CONTEXT_CUBLAS_CHECK(cublasSetMathMode(state_->blas, math_mode(p)));
}

void activate_device(int ordinal) { DD_CUDA_CHECK(cudaSetDevice(ordinal)); }

cudaStream_t cuda_stream() { return current_context().cuda_state().stream; }

cublasHandle_t context_cublas(Context& ctx) {
  ContextState& s = ctx.cuda_state();
  if (!s.blas) {
    DeviceGuard guard(ctx.device_ordinal());
    DD_CONTEXT_CUBLAS_CHECK(cublasCreate(&s.blas));
    DD_CONTEXT_CUBLAS_CHECK(cublasSetStream(s.blas, s.stream));
    DD_CONTEXT_CUBLAS_CHECK(cublasSetMathMode(s.blas, math_mode(ctx.precision())));
    s.blas_workspace = cuda_mem::alloc_in_pool(kBlasWorkspaceBytes, 0);
    DD_CONTEXT_CUBLAS_CHECK(cublasSetWorkspace(s.blas, s.blas_workspace, kBlasWorkspaceBytes));
  }
  return s.blas;
}

}  // namespace dd
