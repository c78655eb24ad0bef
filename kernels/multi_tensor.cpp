#include "kernels/multi_tensor.h"

#include <cstring>

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
// All tensors on one device; returns it (CPU for an empty list: nothing to do there).
Device list_device(const char* op, const std::vector<const Tensor*>& ts) {
  Device dev = Device::CPU;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    DD_CHECK(ts[i]->defined(), op, ": tensor ", i, " is undefined");
    if (i == 0) dev = ts[i]->device();
    DD_CHECK(ts[i]->device() == dev, op, ": tensor ", i, " ", describe(*ts[i]), " is not on ", device_name(dev),
             " like tensor 0");
  }
  return dev;
}

void check_slots(const std::vector<AdamSlot>& slots, std::vector<const Tensor*>& all) {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const AdamSlot& a = slots[i];
    DD_CHECK(a.param.defined() && a.grad.defined() && a.m.defined() && a.v.defined(), "adam_update_multi: slot ",
             i, " has an undefined tensor");
    DD_CHECK(a.param.shape() == a.grad.shape() && a.param.shape() == a.m.shape() && a.param.shape() == a.v.shape(),
             "adam_update_multi: slot ", i, ": param ", describe(a.param), ", grad ", describe(a.grad), ", m ",
             describe(a.m), ", v ", describe(a.v), " must have one shape");
    all.insert(all.end(), {&a.param, &a.grad, &a.m, &a.v});
  }
}
}  // namespace

void adam_update_multi(const std::vector<AdamSlot>& slots, const AdamStepScalars& s) {
  std::vector<const Tensor*> all;
  check_slots(slots, all);
  if (slots.empty()) return;
  DD_DISPATCH(list_device("adam_update_multi", all), adam_update_multi, slots, s);
}

void adam_update_multi_scaled(const std::vector<AdamSlot>& slots, const AdamStepScalars& s, const Tensor& grad_scale,
                              const Tensor& step_scalars) {
  std::vector<const Tensor*> all;
  check_slots(slots, all);
  if (slots.empty()) return;
  DD_CHECK(grad_scale.defined() && grad_scale.numel() >= 1, "adam_update_multi_scaled: grad_scale ",
           describe(grad_scale), " must hold at least one element");
  all.push_back(&grad_scale);
  if (step_scalars.defined()) {
    DD_CHECK(step_scalars.nbytes() >= sizeof(AdamStepScalars), "adam_update_multi_scaled: step_scalars ",
             describe(step_scalars), " is too small for the step's scalars (make it with adam_step_scalars_tensor)");
    all.push_back(&step_scalars);
  }
  DD_DISPATCH(list_device("adam_update_multi_scaled", all), adam_update_multi_scaled, slots, s, grad_scale,
              step_scalars);
}

Tensor adam_step_scalars_tensor(Device dev) {
  constexpr int64_t n = (sizeof(AdamStepScalars) + sizeof(float) - 1) / sizeof(float);
  return Tensor::zeros({n}, dev);
}

void write_adam_step_scalars(Tensor& dst, const AdamStepScalars& s) {
  DD_CHECK(dst.nbytes() >= sizeof(AdamStepScalars), "write_adam_step_scalars: ", describe(dst), " is too small");
  if (dst.device() == Device::CPU)
    std::memcpy(dst.raw_data(), &s, sizeof s);
  else
    cuda_mem::write_small(dst.raw_data(), &s, sizeof s);
}

Tensor clip_coefficient_multi(const std::vector<Tensor>& grads, double max_norm, Device dev) {
  DD_CHECK(max_norm > 0.0, "clip_coefficient_multi: max_norm must be positive, got ", max_norm);
  std::vector<const Tensor*> all;
  for (const Tensor& t : grads) all.push_back(&t);
  if (!grads.empty()) {
    const Device d = list_device("clip_coefficient_multi", all);
    DD_CHECK(d == dev, "clip_coefficient_multi: gradients on ", device_name(d), ", asked for ", device_name(dev));
  }
  DD_DISPATCH(dev, clip_coefficient_multi, grads, max_norm, dev);
}

void ema_update_multi(const std::vector<Tensor>& shadows, const std::vector<Tensor>& params, float w) {
  DD_CHECK(shadows.size() == params.size(), "ema_update_multi: ", shadows.size(), " shadows but ", params.size(),
           " parameters");
  std::vector<const Tensor*> all;
  for (std::size_t i = 0; i < shadows.size(); ++i) {
    DD_CHECK(shadows[i].defined() && params[i].defined() && shadows[i].shape() == params[i].shape(),
             "ema_update_multi: shadow ", i, " ", describe(shadows[i]), " does not match parameter ",
             describe(params[i]));
    all.insert(all.end(), {&shadows[i], &params[i]});
  }
  if (shadows.empty()) return;
  DD_DISPATCH(list_device("ema_update_multi", all), ema_update_multi, shadows, params, w);
}

double sum_squares_multi(const std::vector<Tensor>& ts) {
  std::vector<const Tensor*> all;
  for (const Tensor& t : ts) all.push_back(&t);
  if (ts.empty()) return 0.0;
  DD_DISPATCH(list_device("sum_squares_multi", all), sum_squares_multi, ts);
}

void scale_multi_(const std::vector<Tensor>& ts, float alpha) {
  std::vector<const Tensor*> all;
  for (const Tensor& t : ts) all.push_back(&t);
  if (ts.empty()) return;
  DD_DISPATCH(list_device("scale_multi_", all), scale_multi_, ts, alpha);
}

}  // namespace dd::kernels
