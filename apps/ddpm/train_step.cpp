#include "apps/ddpm/train_step.h"

#include <utility>

#include "autograd/elementwise.h"
#include "apps/dist/shard.h"
#include "autograd/var.h"
#include "engine/device.h"
#include "engine/error.h"
#include "kernels/elementwise.h"
#include "kernels/multi_tensor.h"

namespace dd::ddpm {

TrainStep::TrainStep(TrainStepParts parts, Device dev, bool cuda_graphs) : p_(parts), dev_(dev), graphs_(cuda_graphs) {
  DD_CHECK(p_.model && p_.params && p_.diffusion && p_.gen && p_.adam, "TrainStep: every part is required");
  DD_CHECK(!graphs_ || dev == Device::CUDA, "TrainStep: CUDA graphs need a CUDA device");
}

void TrainStep::set_data_parallel(int rank, int world, std::function<void()> sync_grads,
                                  std::function<void()> before_last_backward) {
  DD_CHECK(world >= 1 && rank >= 0 && rank < world, "TrainStep: rank ", rank, " of world size ", world);
  DD_CHECK((world == 1 && !before_last_backward) || !graphs_, "TrainStep: data parallel runs eagerly (--cuda-graphs off)");
  rank_ = rank;
  world_ = world;
  sync_grads_ = std::move(sync_grads);
  before_last_backward_ = std::move(before_last_backward);
}

void TrainStep::optimizer_step() {
  // The clip factor stays on the device and Adam applies it: nothing is read back in the step.
  const auto& params = p_.adam->params();
  if (sync_grads_) sync_grads_();
  if (p_.grad_clip > 0)
    p_.adam->step(ag::clip_grad_norm_factor(params, p_.grad_clip, p_.params->grad_arena()));
  else
    p_.adam->step();
  p_.params->zero_grad();  // one memset of the gradient arena
}

Tensor TrainStep::body(const Tensor& x0) {
  ag::Var loss = p_.diffusion->p_losses(*p_.model, x0, *p_.gen);
  if (before_last_backward_) before_last_backward_();
  ag::Tape::current().backward(loss);
  optimizer_step();
  ag::Tape::current().clear();
  return loss.value();
}

Tensor TrainStep::run_rank(const std::vector<Tensor>& micro_batches) {
  DD_CHECK(!graphs_, "TrainStep: data parallel runs eagerly");
  Generator& gen = *p_.gen;
  const uint64_t base = gen.offset();
  auto on_dev = [&](const Tensor& b) { return b.device() == dev_ ? b : b.to(dev_); };
  if (micro_blocks_ == 0) {
    // How many blocks a micro-batch draws is known only by drawing: one throwaway forward, then the
    // generator is rewound (its state is two integers). Once per process.
    { const ag::Var probe = p_.diffusion->p_losses(*p_.model, on_dev(micro_batches[0]), gen); }
    ag::Tape::current().clear();
    micro_blocks_ = gen.offset() - base;
    DD_CHECK(micro_blocks_ > 0, "TrainStep: a micro-batch drew no random numbers");
  }
  const std::size_t n = micro_batches.size();
  // As TrainStep::run for one process with n * world micro-batches: each backward seeded by 1/n, so
  // the ranks' average of these gradients is that process's accumulated mean.
  const float inv = static_cast<float>(1.0 / static_cast<double>(n));
  Tensor total;
  for (std::size_t j = 0; j < n; ++j) {
    const uint64_t at = dist::rank_draw_offset(base, static_cast<int64_t>(j), rank_, world_, micro_blocks_);
    gen.set_state(gen.seed(), at);
    ag::Var loss = p_.diffusion->p_losses(*p_.model, on_dev(micro_batches[j]), gen);
    if (n > 1) loss = ag::affine(loss, inv, 0.0f);
    DD_CHECK(gen.offset() == at + micro_blocks_, "TrainStep: a micro-batch drew ", gen.offset() - at,
             " Philox blocks, not the ", micro_blocks_, " of the first: the ranks' streams would overlap");
    if (j + 1 == n && before_last_backward_) before_last_backward_();
    ag::Tape::current().backward(loss);
    ag::Tape::current().clear();
    total = total.defined() ? kernels::add(total, loss.value()) : loss.value();
  }
  gen.set_state(gen.seed(), base + static_cast<uint64_t>(n) * static_cast<uint64_t>(world_) * micro_blocks_);
  optimizer_step();
  return total;
}

Tensor TrainStep::run(const std::vector<Tensor>& micro_batches) {
  const std::size_t n = micro_batches.size();
  DD_CHECK(n >= 1, "TrainStep: no micro-batch given");
  if (world_ > 1) return run_rank(micro_batches);
  if (n == 1) return run(micro_batches[0]);
  DD_CHECK(!graphs_, "TrainStep: gradient accumulation runs eagerly (--cuda-graphs off)");
  // 1/N seeds each backward, so the arena accumulates the gradient of the mean loss; the losses
  // are scaled the same way and summed on the device (nothing read back).
  const float inv = static_cast<float>(1.0 / static_cast<double>(n));
  Tensor total;
  for (const Tensor& batch : micro_batches) {
    const ag::Var loss =
        ag::affine(p_.diffusion->p_losses(*p_.model, batch.device() == dev_ ? batch : batch.to(dev_), *p_.gen), inv,
                   0.0f);
    if (&batch == &micro_batches.back() && before_last_backward_) before_last_backward_();
    ag::Tape::current().backward(loss);
    ag::Tape::current().clear();
    total = total.defined() ? kernels::add(total, loss.value()) : loss.value();
  }
  optimizer_step();
  return total;
}

Tensor TrainStep::run(const Tensor& batch) {
  if (world_ > 1) return run_rank({batch});
  if (!graphs_ || !warm_) {
    // Eager; in graph mode this is the warm-up step, after which nothing is made lazily.
    const Tensor loss = body(batch.device() == dev_ ? batch : batch.to(dev_));
    if (graphs_) {
      p_.diffusion->prepare(dev_);
      x0_ = Tensor::empty(batch.shape(), dev_);
      rng_base_ = Tensor::zeros({1}, dev_, DType::I64);
      adam_scalars_ = kernels::adam_step_scalars_tensor(dev_);
      warm_ = true;
    }
    return loss;
  }
  DD_CHECK(batch.shape() == x0_.shape(), "TrainStep: batch ", describe(batch), " differs from the captured ",
           describe(x0_), " (a CUDA graph replays fixed shapes)");
  x0_.copy_from(batch);
  // Where this step's draws start and which Adam step it is, written where the graph reads them.
  Generator& gen = *p_.gen;
  const uint64_t base = gen.offset();
  cuda_mem::write_small(rng_base_.raw_data(), &base, sizeof base);
  kernels::write_adam_step_scalars(adam_scalars_, p_.adam->next_step_scalars());
  Side& side = sides_[p_.diffusion->self_condition_coin(*p_.model, x0_, gen) ? 1 : 0];
  if (!side.graph) {
    side.graph = std::make_unique<CudaGraph>();
    gen.anchor(static_cast<const uint64_t*>(rng_base_.raw_data()));
    p_.adam->bind_step_scalars(adam_scalars_);
    try {
      side.graph->capture([&] { side.loss = body(x0_); });
    } catch (...) {
      gen.unanchor();
      p_.adam->unbind_step_scalars();
      side.graph.reset();
      throw;
    }
    gen.unanchor();
    p_.adam->unbind_step_scalars();
    side.blocks = gen.offset() - base;  // the capture advanced the host state by one step
    ++captures_;
  } else {
    gen.skip(side.blocks);
    p_.adam->advance_step();
  }
  side.graph->replay();
  ++replays_;
  return side.loss;
}

long long TrainStep::graph_nodes() const {
  long long n = 0;
  for (const Side& s : sides_)
    if (s.graph) n += s.graph->nodes();
  return n;
}

}  // namespace dd::ddpm
