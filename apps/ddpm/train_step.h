#pragma once
// One optimisation step of the trainer: the diffusion loss, the backward, the clip, Adam and
// zero_grad. Eagerly, or on the GPU as a CUDA graph captured once and replayed every later step
// (--cuda-graphs): the host then enqueues one graph launch and three tiny writes a step instead of
// about 1,500 launches, and reads nothing back.
//
// How the graph stays the same step as the eager one (bitwise, on the same device):
//   - the batch is copied into one device buffer the graph reads (a pinned, asynchronous copy);
//   - the step's Philox offsets are relative to a device counter that the host rewrites before each
//     replay (Generator::anchor), so the timesteps and the noise move on with the run;
//   - Adam reads its bias-corrected step scalars from device memory, rewritten the same way;
//   - the self-conditioning coin is read from the generator's counters on the host (no draw, no
//     read-back) and picks one of two graphs, captured the first time each side comes up;
//   - the first step runs eagerly (it creates the lazily made tables and handles), and the
//     per-timestep tables are uploaded before any capture.
// The EMA update stays outside the graph (one launch): its schedule branches on the host.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "autograd/adam.h"
#include "engine/cuda_graph.h"
#include "models/diffusion.h"
#include "models/denoiser.h"
#include "models/params.h"

namespace dd::ddpm {

struct TrainStepParts {
  models::Denoiser* model = nullptr;
  models::ParamSet* params = nullptr;  // the model's
  const models::GaussianDiffusion* diffusion = nullptr;
  Generator* gen = nullptr;
  ag::Adam* adam = nullptr;
  double grad_clip = 0.0;  // 0 = off
};

// Gradient accumulation (--grad-accum N): N micro-batches, each with its own forward and backward
// seeded by 1/N, so the arena holds the gradient of the mean of their losses (the loss of one batch
// N times larger, up to the order of the float sums); then one clip, one Adam step, one zero_grad.
// Each micro-batch draws its timesteps and noise in turn from the generator. It runs eagerly: the
// CUDA graph covers the single-batch step only.

class TrainStep {
 public:
  TrainStep(TrainStepParts parts, Device dev, bool cuda_graphs);
  // One step on batch (any device); returns the step's loss, a one-element tensor on the device
  // (in graph mode the graph's own output: read or copy it before the next run()).
  Tensor run(const Tensor& batch);
  // One optimizer step over micro-batches (see above); returns the mean of their losses. One batch
  // is run(batch).
  Tensor run(const std::vector<Tensor>& micro_batches);

  // Data parallel (eager steps only): this process is rank `rank` of `world`; its draws interleave
  // with the other ranks' as apps/dist/shard.h's rank_draw_offset says, and sync_grads runs on the
  // gradient arena after the backward(s) and before the clip and Adam (the all-reduce average,
  // apps/dist/comm.h). before_last_backward, when given, runs just before the step's last backward
  // (the GPU path watches that backward to overlap its all-reduce with it: apps/ddpm/grad_sync.h).
  // Never called, or world 1: the step as it always was.
  void set_data_parallel(int rank, int world, std::function<void()> sync_grads,
                         std::function<void()> before_last_backward = {});

  bool graphs() const { return graphs_; }
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  // Kernel nodes of the graphs captured so far (what a replay launches), for the bench.
  long long graph_nodes() const;

 private:
  Tensor body(const Tensor& x0);
  Tensor run_rank(const std::vector<Tensor>& micro_batches);
  void optimizer_step();

  TrainStepParts p_;
  Device dev_;
  bool graphs_;
  bool warm_ = false;
  Tensor x0_;             // the graph's input batch
  Tensor rng_base_;       // int64 [1]: the generator's offset at the start of the replayed step
  Tensor adam_scalars_;   // kernels::AdamStepScalars of the replayed step
  struct Side {
    std::unique_ptr<CudaGraph> graph;
    Tensor loss;
    uint64_t blocks = 0;  // Philox blocks one step of this side draws
  };
  Side sides_[2];         // [self-conditioning coin]
  int64_t captures_ = 0, replays_ = 0;
  int rank_ = 0, world_ = 1;
  std::function<void()> sync_grads_, before_last_backward_;
  uint64_t micro_blocks_ = 0;  // Philox blocks one micro-batch draws (data parallel; 0 = not measured yet)
};

}  // namespace dd::ddpm
