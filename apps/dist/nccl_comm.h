#pragma once
// The GPU communicator of data-parallel training (--device cuda with several ranks): NCCL, one
// process per GPU. The host communicator (apps/dist/comm.h: MPI or the TCP group) bootstraps it and
// keeps the small host-side exchanges (the stop flag, the logged loss); the gradients and the
// parameters never leave the GPUs.
//
// Bootstrap: the process selects GPU local_rank (before anything touches the GPU), rank 0 asks NCCL
// for its unique id, the id's bytes reach every rank by the host communicator's byte broadcast, and
// each rank joins with ncclCommInitRankConfig, non-blocking, polled against DD_DIST_TIMEOUT: a rank
// that cannot reach the others fails naming itself instead of hanging (the communicator is aborted).
//
// Built only with NCCL and the CUDA backend (DD_WITH_NCCL); otherwise constructing one throws,
// naming what the build lacks. Nothing here has run on a GPU yet (README, "Training on many processes").
#include <cstdint>
#include <memory>

#include "apps/dist/comm.h"
#include "engine/tensor.h"

namespace dd::dist {

// True when this build has the NCCL communicator.
bool nccl_built();
// Throws, naming what the build lacks, unless nccl_built(): what --device cuda with world_size
// ranks says on such a build.
void require_nccl(int world_size);

struct NcclState;  // nccl_comm.cpp: the communicator, the second stream, the events

class NcclComm {
 public:
  // Collective over every rank of `host` (world size 1 included: NCCL with one rank). Selects GPU
  // host.local_rank() for the process first (engine/device_select.h); throws naming the rank, the
  // local rank and the GPU count when the node has fewer GPUs than ranks.
  NcclComm(const Comm& host, double timeout_s);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }

  // In place, on the current stream, no host synchronisation: every rank ends with the mean over
  // ranks of a float32 CUDA tensor (the sum over ranks, then x 1/W, as the host path does).
  void allreduce_mean(Tensor& t) const;
  // In place, on the current stream: rank 0's float32 CUDA tensor on every rank.
  void broadcast_from_root(Tensor& t) const;

  // The overlapped path (apps/ddpm/grad_sync.h). Sums elements [begin, end) of the float32 CUDA
  // tensor over the ranks on the communication stream, after everything the current stream has
  // queued so far; nothing is scaled (finish_sums scales the whole tensor once).
  void start_sum(Tensor& t, int64_t begin, int64_t end);
  // The current stream waits for every start_sum so far, then multiplies t by 1/W (skipped for W = 1).
  void finish_sums(Tensor& t);

 private:
  int rank_ = 0, world_ = 1;
  double timeout_s_ = 0;
  std::unique_ptr<NcclState> s_;
};

}  // namespace dd::dist
