#include "bench/unet_conv_shapes.h"

#include <map>

#include "autograd/var.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "kernels/conv2d.h"

namespace dd::kernels {
// The linker's --wrap routes every call of dd::kernels::conv2d_forward to the wrapper below and
// gives the original the __real_ name.
Tensor real_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) __asm__(
    "__real__ZN2dd7kernels14conv2d_forwardERKNS_6TensorES3_S3_i");
Tensor wrapped_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) __asm__(
    "__wrap__ZN2dd7kernels14conv2d_forwardERKNS_6TensorES3_S3_i");
}  // namespace dd::kernels

namespace dd::bench {
namespace {
std::vector<ConvShape>* g_record = nullptr;
}

std::string ConvShape::key() const {
  return str_cat(h, "x", w, " ", ci, "->", co, " k", k, " p", pad, bias ? " +b" : "");
}

std::vector<ConvShape> unet_conv_shapes(const models::UnetConfig& cfg, int image_size) {
  Generator gen(1);
  models::Unet model(cfg, gen);
  std::vector<ConvShape> calls;
  g_record = &calls;
  {
    ag::NoGrad no_grad;
    ag::Var x(randn({1, image_size, image_size, cfg.channels}, 7, 0));
    model.forward(x, Tensor::from_vector({1}, {10.0f}), ag::Var());
  }
  g_record = nullptr;
  DD_CHECK(!calls.empty(), "unet_conv_shapes: no conv2d_forward call was recorded; is the binary linked with "
                           "--wrap=_ZN2dd7kernels14conv2d_forwardERKNS_6TensorES3_S3_i ?");
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

}  // namespace dd::bench

namespace dd::kernels {
Tensor wrapped_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  if (bench::g_record) {
    bench::ConvShape s;
    s.h = x.dim(1);
    s.w = x.dim(2);
    s.ci = x.dim(3);
    s.co = w.dim(0);
    s.k = w.dim(1);
    s.pad = padding;
    s.bias = bias.defined();
    bench::g_record->push_back(s);
  }
  return real_conv2d_forward(x, w, bias, padding);
}
}  // namespace dd::kernels
