#pragma once
// A minimal tape-based autograd (after flashlight): every differentiable op
// computes its result with a kernel and, when gradients are wanted, records a
// closure on the tape that maps the output's gradient to its inputs'.
// Tape::backward walks the closures in reverse; gradients accumulate into
// Var::grad (parameters keep theirs until zero_grad). The tape is cleared and
// reused every training step; NoGrad turns recording off for sampling.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dd::ag {

// A variable's gradient side. A backward closure captures a whole Var only for a value its
// backward reads, and otherwise this (Var::grad_ref): an activation then lives until the last
// backward that reads it has run, not until the backward of every op that touched it (an add's
// inputs and output, a conv's output that only feeds an add are freed when the forward is done
// with them).
struct GradData {
  Tensor grad;  // undefined until a gradient reaches this variable (since the last zero_grad)
  // Where grad lives when set (a view into a parameter set's gradient arena), or undefined: the
  // gradient is then written into this buffer in place instead of taking the incoming tensor.
  Tensor grad_buffer;
  Shape shape;  // the value's: every gradient must have it
  bool requires_grad = false;
};

struct VarData {
  Tensor value;
  std::shared_ptr<GradData> g;
  Tensor bf16_value;  // value rounded to bfloat16, made on the first Var::bf16_value() call
};

// What a backward closure holds of a variable whose value it does not read.
class GradRef {
 public:
  GradRef() = default;
  bool requires_grad() const { return g_ && g_->requires_grad; }
  bool has_grad() const { return g_ && g_->grad.defined(); }
  const Tensor& grad() const;
  const Shape& shape() const;
  // As Var::accumulate_grad.
  void accumulate_grad(const Tensor& g) const;

 private:
  friend class Var;
  explicit GradRef(std::shared_ptr<GradData> g) : g_(std::move(g)) {}
  std::shared_ptr<GradData> g_;
};

class Var {
 public:
  Var() = default;  // "no variable" (e.g. an absent bias)
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return static_cast<bool>(d_); }
  const Tensor& value() const;
  Tensor& value();
  // The fp32 value rounded to bfloat16 (nearest even; engine/dtype.h), made on the first call of a
  // forward and kept with the variable until the tape's backward starts (or clear()), so every op of
  // that forward that keeps it (the convs under Precision::BF16, autograd/conv2d_keep.h) shares one
  // copy, and a parameter updated in place between steps never serves a stale one.
  const Tensor& bf16_value() const;
  // Whether this forward has made that copy (and the backward has not started yet).
  bool has_bf16_value() const { return d_ && d_->bf16_value.defined(); }
  const Tensor& grad() const;
  bool has_grad() const { return d_ && d_->g->grad.defined(); }
  bool requires_grad() const { return d_ && d_->g->requires_grad; }
  const Shape& shape() const { return value().shape(); }
  // The gradient side alone (undefined for an undefined variable): it keeps the value alive no longer.
  GradRef grad_ref() const { return d_ ? GradRef(d_->g) : GradRef(); }

  // Adds g into grad. Without a grad buffer the first contribution takes g's storage; with one it
  // is copied into the buffer and later ones are added there in place, so the gradient always
  // lives in the buffer and never shares storage with g.
  void accumulate_grad(const Tensor& g) const { grad_ref().accumulate_grad(g); }
  // Drops the gradient (has_grad() is false until the next contribution); a grad buffer stays
  // attached, its contents untouched (the next contribution overwrites it).
  void zero_grad() const;
  // The gradient, made safe to modify in place: copied first if its storage is shared with another
  // tensor (e.g. a pass-through gradient). A grad-buffer gradient is returned as it is: the buffer
  // is this variable's own place in the arena, and writes are meant to land there.
  Tensor& mutable_grad() const;
  // Fixes where this variable's gradient lives: a tensor of the value's shape, dtype and device
  // (normally a view into a gradient arena, see models::ParamSet). Drops the current gradient.
  // An undefined tensor detaches the buffer (gradients take the incoming storage again).
  void attach_grad_buffer(const Tensor& buffer) const;
  const Tensor& grad_buffer() const;
  bool same(const Var& o) const { return d_ == o.d_; }

 private:
  std::shared_ptr<VarData> d_;
};

// grad_ref of each.
std::vector<GradRef> grad_refs(const std::vector<Var>& vs);

class Tape {
 public:
  // The tape ops record onto (one per thread).
  static Tape& current();

  void record(std::function<void()> backward);
  // Seeds d(loss)/d(loss) = 1 (loss must have one element) and runs every
  // recorded closure in reverse order, freeing each (and what it captured) once
  // it has run. A tape runs once: backward again, or recording, needs clear().
  void backward(const Var& loss);
  // Forgets the recorded closures (and the activations they hold); keeps capacity.
  void clear();
  std::size_t size() const { return nodes_.size(); }
  // Var::bf16_value's copies made while recording: dropped from their variables when the backward
  // starts or the tape is cleared (the closures that took one keep theirs).
  void note_bf16_copy(const std::shared_ptr<VarData>& d) { bf16_copies_.push_back(d); }

 private:
  void forget_bf16_copies();
  std::vector<std::function<void()>> nodes_;
  std::vector<std::weak_ptr<VarData>> bf16_copies_;
  bool ran_ = false;
};

bool grad_enabled();

// RAII: while alive, ops record nothing and produce no-grad outputs.
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

// True when recording is on and any input needs a gradient.
bool needs_grad(std::initializer_list<const Var*> inputs);
bool needs_grad(const std::vector<const Var*>& inputs);  // a list built at run time

}  // namespace dd::ag
