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

struct VarData {
  Tensor value;
  Tensor grad;  // undefined until a gradient reaches this variable
  bool requires_grad = false;
};

class Var {
 public:
  Var() = default;  // "no variable" (e.g. an absent bias)
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return static_cast<bool>(d_); }
  const Tensor& value() const;
  Tensor& value();
  const Tensor& grad() const;
  bool has_grad() const { return d_ && d_->grad.defined(); }
  bool requires_grad() const { return d_ && d_->requires_grad; }
  const Shape& shape() const { return value().shape(); }

  // Adds g into grad (takes g's storage when grad is still empty).
  void accumulate_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the gradient
  // The gradient, made safe to modify in place (copied first if its storage
  // is shared with another tensor, e.g. a pass-through gradient).
  Tensor& mutable_grad() const;
  bool same(const Var& o) const { return d_ == o.d_; }

 private:
  std::shared_ptr<VarData> d_;
};

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

 private:
  std::vector<std::function<void()>> nodes_;
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

}  // namespace dd::ag
