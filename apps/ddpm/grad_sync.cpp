#include "apps/ddpm/grad_sync.h"

#include <algorithm>
#include <limits>

#include "engine/error.h"

namespace dd::ddpm {

namespace {
constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
}

OverlappedGradSync::OverlappedGradSync(dist::NcclComm& nccl, models::ParamSet& params, int64_t bucket_elems)
    : nccl_(nccl), arena_(params.grad_arena()) {
  DD_CHECK(arena_.defined() && arena_.device() == Device::CUDA, "OverlappedGradSync: the gradient arena must be on the GPU");
  std::vector<int64_t> numel;
  int64_t off = 0;
  for (const auto& p : params.all()) {
    offsets_.push_back(off);
    numel.push_back(p.var.value().numel());
    off += numel.back();
  }
  DD_CHECK(off == arena_.numel(), "OverlappedGradSync: the parameters hold ", off, " elements, the arena ", arena_.numel());
  buckets_ = dist::partition_buckets(numel, bucket_elems);
  bucket_of_.assign(numel.size(), 0);
  for (std::size_t b = 0; b < buckets_.size(); ++b)
    for (std::size_t p = buckets_[b].first; p < buckets_[b].last; ++p) bucket_of_[p] = b;
  order_ = dist::bucket_send_order(buckets_.size());
  is_sent_.assign(buckets_.size(), 0);
}

OverlappedGradSync::~OverlappedGradSync() { disarm(); }

void OverlappedGradSync::disarm() {
  if (ag::backward_observer() == this) ag::set_backward_observer(nullptr);
  armed_ = false;
}

void OverlappedGradSync::arm() {
  DD_CHECK(!ag::backward_observer() || ag::backward_observer() == this,
           "OverlappedGradSync: another backward observer is installed on this thread");
  ag::set_backward_observer(this);
  armed_ = true;
  tracing_ = false;
  closures_ = 0;
  running_ = -1;
}

std::size_t OverlappedGradSync::param_of(const Tensor& grad_buffer) const {
  const char* base = static_cast<const char*>(arena_.raw_data());
  const char* at = static_cast<const char*>(grad_buffer.raw_data());
  if (at < base || at >= base + arena_.nbytes()) return npos;  // another parameter set's (an EMA copy)
  const int64_t elem = static_cast<int64_t>((at - base) / static_cast<std::ptrdiff_t>(sizeof(float)));
  const auto it = std::upper_bound(offsets_.begin(), offsets_.end(), elem);
  return static_cast<std::size_t>(it - offsets_.begin()) - 1;
}

void OverlappedGradSync::send_through(std::size_t count) {
  for (; sent_ < count; ++sent_) {
    const dist::Bucket& b = buckets_[order_[sent_]];
    nccl_.start_sum(arena_, b.begin, b.end);
    is_sent_[order_[sent_]] = 1;
  }
}

void OverlappedGradSync::begin(std::size_t closures) {
  if (!armed_) return;
  closures_ = closures;
  running_ = 0;
  sent_ = 0;
  std::fill(is_sent_.begin(), is_sent_.end(), 0);
  tracing_ = planned_closures_ == 0 || closures != planned_closures_;
  if (tracing_) {
    last_node_.assign(offsets_.size(), -1);
    return;
  }
  // Buckets no closure adds into are final already (the adds of earlier micro-batches, zero_grad's
  // zeros): they go at once.
  send_through(dist::buckets_sendable(order_, ready_after_, sent_, -1));
}

void OverlappedGradSync::accumulating(const Tensor& grad_buffer) {
  if (!armed_) return;
  const std::size_t p = param_of(grad_buffer);
  if (p == npos) return;
  if (tracing_) {
    last_node_[p] = std::max(last_node_[p], running_);
    return;
  }
  DD_CHECK(!is_sent_[bucket_of_[p]], "data parallel: backward closure ", running_, " of ", closures_,
           " adds into parameter ", p, " after its gradient bucket's all-reduce started; this step's backward "
           "differs from the one traced at the first step (same closure count, other parameters). Set "
           "DD_DIST_OVERLAP=0 to average the gradients after the backward instead");
}

void OverlappedGradSync::ran(std::size_t index) {
  if (!armed_) return;
  running_ = static_cast<int64_t>(index) + 1;
  if (!tracing_) send_through(dist::buckets_sendable(order_, ready_after_, sent_, static_cast<int64_t>(index)));
}

void OverlappedGradSync::finish() {
  const bool watched = armed_ && running_ >= 0;
  disarm();
  if (watched && tracing_) {
    ready_after_ = dist::bucket_ready_after(buckets_, last_node_);
    planned_closures_ = closures_;
    ++traces_;
  } else if (watched) {
    ++overlapped_;
  } else {
    sent_ = 0;  // not watched: nothing was sent this step
  }
  send_through(order_.size());
  nccl_.finish_sums(arena_);
  sent_ = 0;
}

}  // namespace dd::ddpm
