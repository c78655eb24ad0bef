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
  d_->g = std::make_shared<GradData>();
  d_->g->shape = value.shape();
  d_->g->requires_grad = requires_grad;
  d_->value = std::move(value);
}

const Tensor& Var::value() const {
  DD_CHECK(d_, "Var::value of an undefined variable");
  return d_->value;
}

Tensor& Var::value() {
  DD_CHECK(d_, "Var::value of an undefined variable");
  return d_->value;
}

const Tensor& Var::bf16_value() const {
  DD_CHECK(d_, "Var::bf16_value of an undefined variable");
  DD_CHECK(d_->value.dtype() == DType::F32, "Var::bf16_value: the value ", describe(d_->value),
           " must be float32");
  if (!d_->bf16_value.defined()) {
    d_->bf16_value = d_->value.to(DType::BF16);
    Tape::current().note_bf16_copy(d_);
  }
  return d_->bf16_value;
}

const Tensor& Var::grad() const {
  DD_CHECK(d_, "Var::grad of an undefined variable");
  return d_->g->grad;
}

namespace {
// The gradient, copied first if its storage is shared with another tensor (a first contribution
// taken as it came, e.g. a pass-through gradient), so it may be changed in place. A grad-buffer
// gradient shares the arena's storage by design (never storage_unique) and is returned as it is.
Tensor& owned_grad(GradData& d) {
  if (!d.grad_buffer.defined() && !d.grad.storage_unique()) d.grad = d.grad.clone();
  return d.grad;
}
}  // namespace

const Tensor& GradRef::grad() const {
  DD_CHECK(g_, "GradRef::grad of an undefined variable");
  return g_->grad;
}

const Shape& GradRef::shape() const {
  DD_CHECK(g_, "GradRef::shape of an undefined variable");
  return g_->shape;
}

void GradRef::accumulate_grad(const Tensor& g) const {
  if (!g_ || !g_->requires_grad || !g.defined()) return;
  GradData& d = *g_;
  DD_CHECK(g.shape() == d.shape, "accumulate_grad: gradient ", describe(g), " does not match the value's shape ",
           shape_str(d.shape));
  if (d.grad_buffer.defined()) {
    if (g_observer) g_observer->accumulating(d.grad_buffer);
    // A copy, not a first add into zeros: bitwise what taking g's storage gives (0 + -0 is +0).
    if (!d.grad.defined()) {
      d.grad_buffer.copy_from(g);
      d.grad = d.grad_buffer;
    } else {
      kernels::axpy_(d.grad, 1.0f, g);
    }
  } else if (!d.grad.defined()) {
    // First contribution: share g's storage instead of copying it. Any later
    // in-place change goes through owned_grad(), which copies if shared.
    d.grad = g;
  } else {
    kernels::axpy_(owned_grad(d), 1.0f, g);
  }
}

Tensor& Var::mutable_grad() const {
  DD_CHECK(d_ && d_->g->grad.defined(), "mutable_grad: variable has no gradient");
  return owned_grad(*d_->g);
}

void Var::attach_grad_buffer(const Tensor& buffer) const {
  DD_CHECK(d_, "attach_grad_buffer: undefined variable");
  if (buffer.defined()) {
    DD_CHECK(buffer.shape() == d_->value.shape() && buffer.dtype() == d_->value.dtype() &&
                 buffer.device() == d_->value.device(),
             "attach_grad_buffer: buffer ", describe(buffer), " does not match value ", describe(d_->value));
  }
  d_->g->grad_buffer = buffer;
  d_->g->grad = Tensor();
}

const Tensor& Var::grad_buffer() const {
  DD_CHECK(d_, "Var::grad_buffer of an undefined variable");
  return d_->g->grad_buffer;
}

void Var::zero_grad() const {
  if (d_) d_->g->grad = Tensor();
}

std::vector<GradRef> grad_refs(const std::vector<Var>& vs) {
  std::vector<GradRef> refs;
  refs.reserve(vs.size());
  for (const Var& v : vs) refs.push_back(v.grad_ref());
  return refs;
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
  forget_bf16_copies();
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
  forget_bf16_copies();
  ran_ = false;
}

void Tape::forget_bf16_copies() {
  for (const std::weak_ptr<VarData>& w : bf16_copies_)
    if (std::shared_ptr<VarData> d = w.lock()) d->bf16_value = Tensor();
  bf16_copies_.clear();
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
