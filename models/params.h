#pragma once
// Parameters registered under the PyTorch state_dict names of the seed module, so weights move
// between this engine and PyTorch by name. Convolution weights live here as OHWI (our NHWC kernels
// want the input channel innermost); the state_dict view converts to and from PyTorch's OIHW.
#include <map>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "engine/rng.h"

namespace dd::models {

enum class ParamKind { Plain, ConvWeight };

struct Parameter {
  std::string name;
  ag::Var var;
  ParamKind kind = ParamKind::Plain;
};

// The parameters live in one flat buffer, the parameter arena: each Var's value is a view into it,
// in registration order, back to back. Once gradients are asked for (grad_arena(), zero_grad()), a
// gradient arena of the same layout holds every gradient: each Var gets its view as grad buffer,
// so backward accumulates in place there, zero_grad is one memset, and the optimizer, the EMA and
// the clip can run over the whole model as one tensor (ag::Adam, models::Ema, ag::clip_grad_norm*).
class ParamSet {
 public:
  // A new parameter, zero, stored on its own until the next pack() (the arena is rebuilt lazily:
  // registering a few hundred tensors one by one must not copy the arena each time).
  ag::Var add(const std::string& name, const Shape& shape, ParamKind kind = ParamKind::Plain);
  // Moves every parameter into a fresh arena on the parameters' device (values kept; the Vars see
  // their new views). A no-op when nothing was added since the last pack. Models call it once
  // built; the arena accessors and to() call it too.
  void pack();
  // The parameter arena: a 1-D tensor of numel() elements (undefined for an empty set).
  const Tensor& param_arena();
  // The gradient arena, created zero (and attached to every Var) on first use; 1-D, numel() elements.
  const Tensor& grad_arena();
  bool has_grad_arena() const { return grad_arena_.defined(); }
  // Clears every gradient: one memset of the gradient arena (created if need be) and every Var's
  // 'has a gradient' flag, so Adam still skips a parameter that then receives none.
  void zero_grad();
  const std::vector<Parameter>& all() const { return params_; }
  std::vector<ag::Var> vars() const;
  const Parameter& at(const std::string& name) const;
  int64_t numel() const;
  // Moves every parameter to dev in place (a new arena there; the Vars the model holds see the
  // move); gradients are dropped, a gradient arena moves along (zero). Optimizers and EMAs are
  // built after this.
  void to(Device dev);
  Device device() const;  // of the first parameter (CPU when there are none)

  // PyTorch-layout copies of every tensor, by name (conv weights as OIHW).
  std::map<std::string, Tensor> state_dict() const;
  // Loads PyTorch-layout tensors in place. strict: every parameter present and no unknown names
  // (as torch's load_state_dict(strict=True)); the error lists what is missing or unexpected.
  // `source` names the file in errors.
  void load_state_dict(const std::map<std::string, Tensor>& tensors, const std::string& source,
                       bool strict = true);

 private:
  void pack_on(Device dev);
  void make_grad_arena();

  std::vector<Parameter> params_;
  std::map<std::string, size_t> index_;
  Tensor param_arena_, grad_arena_;
  bool packed_ = true;  // every parameter is a view into param_arena_ (true for the empty set)
};

// PyTorch's default initialisation: Conv2d/Linear weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (kaiming_uniform with a = sqrt(5) gives the same bound for the weight); GroupNorm weight 1, bias 0.
void uniform_fill(Tensor& t, float bound, Generator& gen);

}  // namespace dd::models
