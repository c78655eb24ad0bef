#pragma once
// The data-parallel GPU step's gradient average, overlapped with the backward (issue 16): the flat
// gradient arena is cut into buckets (apps/dist/buckets.h, DD_DIST_BUCKET_MB), and each bucket's
// NCCL sum starts on a communication stream as soon as the backward is done with it, ordered after
// the compute stream by an event; the optimizer's stream waits for the last bucket, then the arena
// is scaled by 1/W once (apps/dist/nccl_comm.h).
//
// When is a bucket done? A parameter's gradient is final once the closure that last adds into it has
// run. The tape's closures are opaque, so the first backward is traced (BackwardObserver: which
// closure adds into which parameter) and its buckets are sent after it, not overlapped; later
// backwards with the same number of closures send each bucket after the closure the trace says
// finishes it. The trace is a promise about the tape, so it is checked: a later backward that adds
// into a parameter whose bucket is already on its way throws (that step's gradient would be wrong),
// and a backward with another closure count is traced afresh (sent after it). Every rank sends the
// buckets in the same order (buckets.h), whatever its own tape says, so the collectives pair up.
#include <cstdint>
#include <vector>

#include "apps/dist/buckets.h"
#include "apps/dist/nccl_comm.h"
#include "autograd/backward_observer.h"
#include "models/params.h"

namespace dd::ddpm {

class OverlappedGradSync : public ag::BackwardObserver {
 public:
  // params' gradient arena (a CUDA one) is what gets averaged; bucket_elems: elements per bucket.
  OverlappedGradSync(dist::NcclComm& nccl, models::ParamSet& params, int64_t bucket_elems);
  ~OverlappedGradSync() override;
  OverlappedGradSync(const OverlappedGradSync&) = delete;
  OverlappedGradSync& operator=(const OverlappedGradSync&) = delete;

  // Watch the next backward (the step's last: its adds are the final contributions).
  void arm();
  // After that backward: sends what is not sent yet, makes the current stream wait for every
  // bucket and scales the arena by 1/W. Without arm() before: the whole arena in buckets.
  void finish();

  const std::vector<dist::Bucket>& buckets() const { return buckets_; }
  int64_t traces() const { return traces_; }
  int64_t overlapped_steps() const { return overlapped_; }

  void begin(std::size_t closures) override;
  void accumulating(const Tensor& grad_buffer) override;
  void ran(std::size_t index) override;

 private:
  std::size_t param_of(const Tensor& grad_buffer) const;  // params' index, or npos (not this arena)
  void send_through(std::size_t count);                    // sends order_[sent_, count)
  void disarm();

  dist::NcclComm& nccl_;
  Tensor arena_;
  std::vector<int64_t> offsets_;  // each parameter's first element in the arena, ascending
  std::vector<dist::Bucket> buckets_;
  std::vector<std::size_t> bucket_of_;  // parameter -> bucket
  std::vector<std::size_t> order_;      // the send order (dist::bucket_send_order)
  std::size_t sent_ = 0;                // order_[0, sent_) are sent this step
  std::vector<char> is_sent_;           // per bucket, this step
  // The plan from the trace: how many closures that backward ran, and per bucket the closure after
  // which it is final. planned_closures_ 0: no plan yet.
  std::size_t planned_closures_ = 0;
  std::vector<int64_t> ready_after_;
  bool armed_ = false, tracing_ = false;
  std::size_t closures_ = 0;     // of the backward being watched
  int64_t running_ = -1;         // the closure running now (-1: before the first)
  std::vector<int64_t> last_node_;  // trace: per parameter, the last closure that added into it
  int64_t traces_ = 0, overlapped_ = 0;
};

}  // namespace dd::ddpm
