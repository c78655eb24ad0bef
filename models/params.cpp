#include "models/params.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/philox.h"
#include "models/torch_layout.h"

namespace dd::models {

ag::Var ParamSet::add(const std::string& name, const Shape& shape, ParamKind kind) {
  DD_CHECK(!index_.count(name), "ParamSet: parameter '", name, "' registered twice");
  DD_CHECK(kind != ParamKind::ConvWeight || shape.size() == 4, "ParamSet: conv weight '", name,
           "' must be [O, K, K, I], got ", shape_str(shape));
  ag::Var v(Tensor::zeros(shape), /*requires_grad=*/true);
  index_[name] = params_.size();
  params_.push_back({name, v, kind});
  packed_ = false;
  return v;
}

void ParamSet::pack_on(Device dev) {
  const int64_t total = numel();
  Tensor arena = total > 0 ? Tensor::empty({total}, dev) : Tensor();
  int64_t off = 0;
  for (auto& p : params_) {
    ag::Var v = p.var;
    Tensor view = Tensor::view_of(arena, off, v.shape());
    view.copy_from(v.value());
    v.value() = view;
    off += view.numel();
  }
  param_arena_ = arena;
  packed_ = true;
  // A gradient arena follows the parameters' layout and device.
  if (grad_arena_.defined()) make_grad_arena();
}

void ParamSet::pack() {
  if (!packed_) pack_on(device());
}

const Tensor& ParamSet::param_arena() {
  pack();
  return param_arena_;
}

void ParamSet::make_grad_arena() {
  const int64_t total = numel();
  grad_arena_ = total > 0 ? Tensor::zeros({total}, device()) : Tensor();
  int64_t off = 0;
  for (auto& p : params_) {
    p.var.attach_grad_buffer(Tensor::view_of(grad_arena_, off, p.var.shape()));
    off += p.var.value().numel();
  }
}

const Tensor& ParamSet::grad_arena() {
  pack();
  if (!grad_arena_.defined()) make_grad_arena();
  return grad_arena_;
}

void ParamSet::zero_grad() {
  grad_arena();
  if (grad_arena_.defined()) grad_arena_.zero_();
  for (const auto& p : params_) p.var.zero_grad();
}

std::vector<ag::Var> ParamSet::vars() const {
  std::vector<ag::Var> out;
  out.reserve(params_.size());
  for (const auto& p : params_) out.push_back(p.var);
  return out;
}

const Parameter& ParamSet::at(const std::string& name) const {
  auto it = index_.find(name);
  DD_CHECK(it != index_.end(), "ParamSet: no parameter named '", name, "'");
  return params_[it->second];
}

int64_t ParamSet::numel() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.var.value().numel();
  return n;
}

void ParamSet::to(Device dev) {
  for (const auto& p : params_) p.var.zero_grad();
  if (!packed_ || (param_arena_.defined() && param_arena_.device() != dev)) pack_on(dev);
  else if (grad_arena_.defined()) grad_arena_.zero_();
}

Device ParamSet::device() const { return params_.empty() ? Device::CPU : params_.front().var.value().device(); }

static Shape torch_shape(const Parameter& p) {
  const Shape& s = p.var.shape();
  if (p.kind == ParamKind::ConvWeight) return {s[0], s[3], s[1], s[2]};
  return s;
}

std::map<std::string, Tensor> ParamSet::state_dict() const {
  std::map<std::string, Tensor> out;
  for (const auto& p : params_) {
    const Tensor& v = p.var.value();
    out[p.name] = p.kind == ParamKind::ConvWeight ? ohwi_to_oihw(v) : v.to(Device::CPU).clone();
  }
  return out;
}

void ParamSet::load_state_dict(const std::map<std::string, Tensor>& tensors, const std::string& source,
                               bool strict) {
  std::vector<std::string> missing, unexpected;
  for (const auto& p : params_)
    if (!tensors.count(p.name)) missing.push_back(p.name);
  for (const auto& kv : tensors)
    if (!index_.count(kv.first)) unexpected.push_back(kv.first);
  if (strict && (!missing.empty() || !unexpected.empty())) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 8) s += str_cat(", ... (", v.size(), " in all)");
      return s.empty() ? std::string("none") : s;
    };
    DD_FAIL(source, ": the weights do not match the model: missing keys: ", list(missing),
            "; unexpected keys: ", list(unexpected));
  }
  // Check every shape before changing anything, so a bad file leaves the model untouched.
  for (const auto& p : params_) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) continue;
    DD_CHECK(it->second.shape() == torch_shape(p), source, ": '", p.name, "' has shape ",
             shape_str(it->second.shape()), " but the model expects ", shape_str(torch_shape(p)));
  }
  for (const auto& p : params_) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) continue;
    Tensor v = p.kind == ParamKind::ConvWeight ? oihw_to_ohwi(it->second) : it->second.to(Device::CPU);
    ag::Var handle = p.var;  // shares the parameter's storage
    handle.value().copy_from(v.to(handle.value().device()));
  }
}

void uniform_fill(Tensor& t, float bound, Generator& gen) {
  DD_CHECK(t.device() == Device::CPU, "uniform_fill: CPU tensors only");
  const int64_t n = t.numel();
  const uint64_t seed = gen.seed(), offset = gen.reserve(n);
  float* d = t.data();
  for (int64_t i = 0; i < n; ++i) {
    const double u = philox_uniform(philox_u32(seed, offset + static_cast<uint64_t>(i / 4), static_cast<int>(i % 4)));
    d[i] = static_cast<float>((2.0 * u - 1.0) * bound);
  }
}

}  // namespace dd::models
