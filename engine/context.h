#pragma once
// The execution context every op runs in: which device, which stream, the cuBLAS handle and its
// workspace, which memory pool new device tensors come from, and the precision policy. Ops reach
// it through current_context() (thread-local, as tiny-cuda-nn hands its stream down), so a second
// device or a second stream is a second Context, not a change to every op's signature.
//
// A ContextScope makes a context current for the calling thread until it ends; without one the
// thread uses the process's default context (device 0, the engine's stream, the general pool,
// fp32). The CUDA pieces are created on first use, so a CPU-only run never touches the driver.
#include <cstdint>
#include <memory>
#include <string>

namespace dd {

// How the matrix products may round their inputs (the precision policy, `--precision` of the apps):
//   FP32  nothing rounded: the SIMT kernels and pedantic cuBLAS (the reference path);
//   TF32  the tensor-core convolutions and cuBLAS's GEMMs round to tf32;
//   BF16  the tensor-core convolutions and attention round to bf16, cuBLAS's GEMMs to tf32.
// Storage, accumulation, normalisation statistics, softmax, losses, Adam and the EMA stay fp32
// whatever the policy; the CPU backend rounds the same operands (kernels/cpu/operand_rounding.h).
enum class Precision { FP32, TF32, BF16 };
const char* precision_name(Precision p);
// "fp32", "tf32" or "bf16"; anything else throws naming `what` (a flag or a file) and the value.
Precision parse_precision(const std::string& name, const char* what = "--precision");

struct ContextState;  // the CUDA objects (engine/cuda/context.cu)

class Context {
 public:
  explicit Context(int device_ordinal = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device_ordinal() const { return device_; }
  Precision precision() const { return precision_; }
  void set_precision(Precision p);

  // The memory pool new device tensors are carved from: 0 is the general pool; a CUDA graph's
  // capture switches to its private pool (cuda_mem::PoolScope) so the graph's tensors keep their
  // addresses for every replay.
  int pool() const { return pool_; }
  void set_pool(int id) { pool_ = id; }

  // True between cuda_graph capture begin and end on this context's stream: anything that would
  // leave the device (a host upload, a read-back, a synchronization) throws instead of being
  // recorded into the graph.
  bool capturing() const { return capturing_; }
  void set_capturing(bool on) { capturing_ = on; }

  // The CUDA objects, created on first use (CUDA builds only; see engine/cuda_stream.h).
  ContextState& cuda_state();

 private:
  int device_;
  Precision precision_ = Precision::FP32;
  int pool_ = 0;
  bool capturing_ = false;
  std::unique_ptr<ContextState> state_;
};

// The calling thread's context (the default one unless a ContextScope says otherwise).
Context& current_context();
Context& default_context();

// Sets the current context's precision until the scope ends (FID's Inception runs fp32 inside a
// bf16 run, as pytorch-fid does).
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Context& ctx_;
  Precision prev_;
};

class ContextScope {
 public:
  explicit ContextScope(Context& ctx);
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Context* prev_;
};

}  // namespace dd
