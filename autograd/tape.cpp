#include "autograd/var.h"

#include "autograd/backward_observer.h"

#include "engine/error.h"
#include "kernels/elementwise.h"

namespace dd::ag {

namespace {
thread_local bool g_grad_enabled = true;
thread_local BackwardObserver* g_observer = nullptr;
}  // namespace

void set_backward_observer(BackwardObserver* observer) { g_observer = observer; }
BackwardObserver* backward_observer() { return g_observer; }

Var::Var(Tensor value, bool requires_grad) : d_(std::make_shared<VarData>()) {
  d_->value = std::move(value);
  d_->requires_grad = requires_grad;
}

const Tensor& Var::value() const {
  DD_CHECK(d_, "Var::value of an undefined variable");
  return d_->value;
}

Tensor& Var::value() {
  DD_CHECK(d_, "Var::value of an undefined variable");
  return d_->value;
}

const Tensor& Var::grad() const {
  DD_CHECK(d_, "Var::grad of an undefined variable");
  return d_->grad;
}

void Var::accumulate_grad(const Tensor& g) const {
  if (!d_ || !d_->requires_grad || !g.defined()) return;
  DD_CHECK(g.shape() == d_->value.shape(), "accumulate_grad: gradient ", describe(g),
           " does not match value ", describe(d_->value));
  if (d_->grad_buffer.defined()) {
    if (g_observer) g_observer->accumulating(d_->grad_buffer);
    // A copy, not a first add into zeros: bitwise what taking g's storage gives (0 + -0 is +0).
    if (!d_->grad.defined()) {
      d_->grad_buffer.copy_from(g);
      d_->grad = d_->grad_buffer;
    } else {
      kernels::axpy_(d_->grad, 1.0f, g);
    }
  } else if (!d_->grad.defined()) {
    // First contribution: share g's storage instead of copying it. Any later
    // in-place change goes through mutable_grad(), which copies if shared.
    d_->grad = g;
  } else {
    kernels::axpy_(mutable_grad(), 1.0f, g);
  }
}

Tensor& Var::mutable_grad() const {
  DD_CHECK(d_ && d_->grad.defined(), "mutable_grad: variable has no gradient");
  // A buffer-backed gradient shares the arena's storage by design (never storage_unique).
  if (!d_->grad_buffer.defined() && !d_->grad.storage_unique()) d_->grad = d_->grad.clone();
  return d_->grad;
}

void Var::attach_grad_buffer(const Tensor& buffer) const {
  DD_CHECK(d_, "attach_grad_buffer: undefined variable");
  if (buffer.defined()) {
    DD_CHECK(buffer.shape() == d_->value.shape() && buffer.dtype() == d_->value.dtype() &&
                 buffer.device() == d_->value.device(),
             "attach_grad_buffer: buffer ", describe(buffer), " does not match value ", describe(d_->value));
  }
  d_->grad_buffer = buffer;
  d_->grad = Tensor();
}

const Tensor& Var::grad_buffer() const {
  DD_CHECK(d_, "Var::grad_buffer of an undefined variable");
  return d_->grad_buffer;
}

void Var::zero_grad() const {
  if (d_) d_->grad = Tensor();
}

Tape& Tape::current() {
  thread_local Tape tape;
  return tape;
}

void Tape::record(std::function<void()> backward) {
  DD_CHECK(!ran_, "record: this tape has already been run; clear() it before recording a new forward");
  nodes_.push_back(std::move(backward));
}

void Tape::backward(const Var& loss) {
  DD_CHECK(loss.defined(), "backward: undefined loss");
  DD_CHECK(loss.value().numel() == 1, "backward: loss must be a scalar, got ",
           describe(loss.value()));
  DD_CHECK(loss.requires_grad(), "backward: loss does not depend on any variable that requires grad");
  DD_CHECK(!ran_, "backward: this tape has already been run (its closures, and the activations they held, were "
           "freed as they ran); clear() it and record the forward again");
  ran_ = true;
  loss.accumulate_grad(Tensor::full(loss.shape(), 1.0f, loss.value().device()));
  // Each closure is destroyed as soon as it has run: the activations it captured are freed during
  // the backward instead of at clear(), so the backward's peak holds only what is still to come.
  BackwardObserver* const observer = g_observer;
  if (observer) observer->begin(nodes_.size());
  std::size_t index = 0;
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it, ++index) {
    std::function<void()> node = std::move(*it);
    *it = nullptr;
    node();
    if (observer) observer->ran(index);
  }
}

void Tape::clear() {
  nodes_.clear();
  ran_ = false;
}

bool grad_enabled() { return g_grad_enabled; }

NoGrad::NoGrad() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGrad::~NoGrad() { g_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<const Var*> inputs) { return needs_grad(std::vector<const Var*>(inputs)); }

bool needs_grad(const std::vector<const Var*>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Var* v : inputs)
    if (v && v->requires_grad()) return true;
  return false;
}

}  // namespace dd::ag
