#pragma once
// Shared by the sampler tests (test_ddim, test_dpm_solver, test_ddpm_sampler): a fixed stand-in for a
// trained model, and the stacking of per-step tensors for the diffusers reference scripts.
#include <cmath>
#include <vector>

#include "autograd/var.h"
#include "models/denoiser.h"

namespace dd::test {

// A fixed function of x and t standing in for a trained model: out = 0.8 tanh(x + t / 1000), 1 channel.
struct FnModel : models::Denoiser {
  ag::Var forward(const ag::Var& x, const Tensor& t, const ag::Var&) override {
    const std::vector<float> xv = x.value().to_vector(), tv = t.to_vector();
    const int64_t per = x.value().numel() / x.value().dim(0);
    std::vector<float> out(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i)
      out[i] = static_cast<float>(0.8 * std::tanh(double(xv[i]) + double(tv[i / static_cast<std::size_t>(per)]) / 1000.0));
    return ag::Var(Tensor::from_vector(x.value().shape(), out));
  }
  bool self_condition() const override { return false; }
  int channels() const override { return 1; }
};

// [S, ...] from S tensors of one shape.
inline Tensor stack_steps(const std::vector<Tensor>& v) {
  Shape s{static_cast<int64_t>(v.size())};
  for (int64_t d : v[0].shape()) s.push_back(d);
  std::vector<float> all;
  for (const Tensor& t : v)
    for (float f : t.to_vector()) all.push_back(f);
  return Tensor::from_vector(s, all);
}

}  // namespace dd::test
