#include "engine/context.h"
#include "engine/device_select.h"

#include "engine/error.h"

namespace dd {

#ifdef DD_WITH_CUDA
void activate_device(int ordinal);  // engine/cuda/context.cu: cudaSetDevice
#else
struct ContextState {};
Context::Context(int device_ordinal) : device_(device_ordinal) {
  DD_CHECK(device_ordinal >= 0, "Context: device ordinal ", device_ordinal, " must be >= 0");
}
Context::~Context() = default;
void Context::set_precision(Precision p) { precision_ = p; }
ContextState& Context::cuda_state() { DD_FAIL("this build has no CUDA backend (configure with the CUDA toolkit)"); }
#endif

namespace {
thread_local Context* t_current = nullptr;
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32:
      return "fp32";
    case Precision::TF32:
      return "tf32";
    case Precision::BF16:
      return "bf16";
  }
  DD_FAIL("invalid Precision value ", static_cast<int>(p));
}


namespace {
int g_default_ordinal = 0;          // select_default_device's, read when the default context is made
Context* g_default_made = nullptr;  // the default context, once made
}  // namespace

Context& default_context() {
  // Never destroyed: its stream and cuBLAS handle must outlive every static tensor, and tearing
  // them down after the CUDA runtime has shut down would fail.
  static Context* ctx = g_default_made = new Context(g_default_ordinal);
  return *ctx;
}

#ifdef DD_WITH_CUDA
void select_default_device(int ordinal) {
  DD_CHECK(ordinal >= 0, "select_default_device: device ordinal ", ordinal, " must be >= 0");
  DD_CHECK(!g_default_made || g_default_made->device_ordinal() == ordinal, "cannot move this process to GPU ",
           ordinal, ": it already works on GPU ", g_default_made ? g_default_made->device_ordinal() : 0,
           " (the device must be chosen before anything touches the GPU)");
  g_default_ordinal = ordinal;
  activate_device(ordinal);
}
#endif

Context& current_context() { return t_current ? *t_current : default_context(); }

Precision parse_precision(const std::string& name, const char* what) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  DD_FAIL(what, " must be fp32, tf32 or bf16, got '", name, "'");
}

PrecisionScope::PrecisionScope(Precision p) : ctx_(current_context()), prev_(ctx_.precision()) {
  ctx_.set_precision(p);
}
PrecisionScope::~PrecisionScope() {
  try {
    ctx_.set_precision(prev_);
  } catch (...) {  // cuBLAS refusing its math mode would resurface at the next GEMM
  }
}

// Kernels launch on the current device: a scope that changes the device ordinal switches it (CUDA
// builds), and its end switches back.
ContextScope::ContextScope(Context& ctx) : prev_(t_current) {
#ifdef DD_WITH_CUDA
  if (ctx.device_ordinal() != current_context().device_ordinal()) activate_device(ctx.device_ordinal());
#endif
  t_current = &ctx;
}
ContextScope::~ContextScope() {
#ifdef DD_WITH_CUDA
  const int now = current_context().device_ordinal();
  t_current = prev_;
  if (now != current_context().device_ordinal()) {
    try {
      activate_device(current_context().device_ordinal());
    } catch (...) {  // a destructor must not throw; the next CUDA call reports a lost device
    }
  }
#else
  t_current = prev_;
#endif
}

}  // namespace dd
