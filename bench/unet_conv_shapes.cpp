#include "bench/unet_conv_shapes.h"

#include <cmath>
#include <map>

#include "autograd/var.h"
#include "bench/bench_common.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "kernels/conv2d.h"

namespace dd::bench {
namespace {
std::vector<ConvShape>* g_record = nullptr;

void record(const kernels::Conv2dCall& c) {
  ConvShape s;
  s.h = c.x[1];
  s.w = c.x[2];
  s.ci = c.x[3];
  s.co = c.w[0];
  s.k = c.w[1];
  s.pad = c.padding;
  s.bias = c.bias;
  g_record->push_back(s);
}
}  // namespace

std::string ConvShape::key() const {
  return str_cat(h, "x", w, " ", ci, "->", co, " k", k, " p", pad, bias ? " +b" : "");
}

std::vector<ConvShape> unet_conv_shapes(const models::UnetConfig& cfg, int image_size) {
  Generator gen(1);
  models::Unet model(cfg, gen);
  std::vector<ConvShape> calls;
  g_record = &calls;
  {
    const kernels::Conv2dObserverScope observe(record);
    ag::NoGrad no_grad;
    ag::Var x(randn({1, image_size, image_size, cfg.channels}, 7, 0));
    model.forward(x, Tensor::from_vector({1}, {10.0f}), ag::Var());
  }
  g_record = nullptr;
  DD_CHECK(!calls.empty(), "unet_conv_shapes: the U-Net's forward reported no convolution");
  std::vector<ConvShape> distinct;
  std::map<std::string, std::size_t> index;
  for (const ConvShape& c : calls) {
    auto it = index.find(c.key());
    if (it == index.end()) {
      index[c.key()] = distinct.size();
      distinct.push_back(c);
      distinct.back().uses = 1;
    } else {
      ++distinct[it->second].uses;
    }
  }
  return distinct;
}

ConvInputs make_conv_inputs(const ConvShape& s, int64_t B, Device d, uint64_t seed) {
  const int64_t ho = s.h + 2 * s.pad - s.k + 1, wo = s.w + 2 * s.pad - s.k + 1;
  ConvInputs in;
  in.x = random_tensor({B, s.h, s.w, s.ci}, d, seed);
  in.w = random_tensor({s.co, s.k, s.k, s.ci}, d, seed + 1, 1.0f / std::sqrt(float(s.ci * s.k * s.k)));
  if (s.bias) in.bias = random_tensor({s.co}, d, seed + 2);
  in.dy = random_tensor({B, ho, wo, s.co}, d, seed + 3);
  return in;
}

}  // namespace dd::bench
