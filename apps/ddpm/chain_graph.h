#pragma once
// A whole sampling chain (every step of DDIM, DPM-Solver++ or the x0-form DDPM for one batch) as one
// CUDA graph, captured once per batch size and replayed for each later batch: the host then issues
// one launch per batch instead of the chain's tens of thousands. The per-step coefficients are
// kernel arguments baked into the recording (they depend on the step, not on the batch); what
// changes from batch to batch is the generator's position, so every draw in the chain is taken
// relative to a device counter the host rewrites before each replay (Generator::anchor, as the
// training step's graph). The first batch runs eagerly: it creates the lazily made tables and
// handles, so a capture allocates and uploads nothing it should not. Per-step callbacks (progress,
// trajectory snapshots) run only in eager batches; a replayed batch reports when it is done.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "engine/cuda_graph.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace dd::ddpm {

class ChainGraphs {
 public:
  using Chain = std::function<Tensor(Generator& gen, bool eager)>;
  // Runs chain for a batch of n images: eagerly the first time (eager = true), then from the graph
  // captured for n. The returned tensor is the graph's output buffer: copy it before the next run().
  // Without graphs (enabled = false) every call is eager.
  ChainGraphs(bool enabled, Device dev) : enabled_(enabled), dev_(dev) {}
  Tensor run(int64_t n, Generator& gen, const Chain& chain);
  int64_t replays() const { return replays_; }

 private:
  struct Entry {
    std::unique_ptr<CudaGraph> graph;
    Tensor out, base;
    uint64_t blocks = 0;  // Philox blocks one chain draws
  };
  bool enabled_;
  Device dev_;
  bool warm_ = false;
  std::map<int64_t, Entry> by_n_;
  int64_t replays_ = 0;
};

}  // namespace dd::ddpm
