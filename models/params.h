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

class ParamSet {
 public:
  ag::Var add(const std::string& name, const Shape& shape, ParamKind kind = ParamKind::Plain);
  const std::vector<Parameter>& all() const { return params_; }
  std::vector<ag::Var> vars() const;
  const Parameter& at(const std::string& name) const;
  int64_t numel() const;
  // Moves every parameter to dev in place (the Vars the model holds see the
  // move); gradients are dropped. Optimizers and EMAs are built after this.
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
  std::vector<Parameter> params_;
  std::map<std::string, size_t> index_;
};

// PyTorch's default initialisation: Conv2d/Linear weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (kaiming_uniform with a = sqrt(5) gives the same bound for the weight); GroupNorm weight 1, bias 0.
void uniform_fill(Tensor& t, float bound, Generator& gen);

}  // namespace dd::models
