#pragma once
// A CUDA graph of work the host enqueues once and the device replays: the training step and the
// sampler's step (issue 11). capture() runs the host code once on the current context's stream in
// capture mode: its kernels, copies and memsets are recorded, not run; tensors it allocates come
// from the graph's private pool, so their addresses stay valid for every replay. replay() launches
// the recording: one host call instead of the step's hundreds of launches.
//
// What a captured region must not do (each throws while capturing, naming itself): copy from or
// to host memory, synchronize, empty the cache. Everything a replay needs that changes from step
// to step must therefore be read from device memory written before the replay (cuda_mem::
// write_small: the RNG offset, Adam's step scalars, the sampler's timestep).
//
// Without CUDA every member throws (cuda_graphs_supported() is false).
#include <functional>
#include <memory>

namespace dd {

bool cuda_graphs_supported();

class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Records body (run once on the host). A throw inside body abandons the capture and leaves the
  // graph empty; the exception propagates. Capturing twice replaces the recording (same pool).
  void capture(const std::function<void()>& body);
  void replay();
  bool captured() const;
  // Kernel nodes in the recording (what one replay launches).
  long long nodes() const;
  int pool() const { return pool_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int pool_ = 0;
};

}  // namespace dd
