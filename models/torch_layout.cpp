#include "models/torch_layout.h"

#include "engine/error.h"

namespace dd::models {

namespace {

// out[a, c, b] = in[a, b, c] for every a; the one transpose all four conversions are.
Tensor swap_last_two_blocks(const Tensor& x, int64_t A, int64_t B, int64_t C, const Shape& out_shape) {
  Tensor c = x.device() == Device::CPU ? x : x.to(Device::CPU);
  Tensor out = Tensor::empty(out_shape);
  const float* s = c.data();
  float* d = out.data();
#pragma omp parallel for schedule(static) if (A * B * C > (1 << 16))
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < C; ++k) d[(a * C + k) * B + b] = s[(a * B + b) * C + k];
  return out;
}

void check4(const char* what, const Tensor& x) {
  DD_CHECK(x.ndim() == 4, what, ": expected a 4-d tensor, got ", shape_str(x.shape()));
}

}  // namespace

Tensor nchw_to_nhwc(const Tensor& x) {
  check4("nchw_to_nhwc", x);
  const Shape& s = x.shape();
  return swap_last_two_blocks(x, s[0], s[1], s[2] * s[3], {s[0], s[2], s[3], s[1]});
}

Tensor nhwc_to_nchw(const Tensor& x) {
  check4("nhwc_to_nchw", x);
  const Shape& s = x.shape();
  return swap_last_two_blocks(x, s[0], s[1] * s[2], s[3], {s[0], s[3], s[1], s[2]});
}

// A conv weight is an image batch over its output channels: OIHW is "NCHW" and OHWI is "NHWC".
Tensor ohwi_to_oihw(const Tensor& w) {
  check4("ohwi_to_oihw", w);
  return nhwc_to_nchw(w);
}

Tensor oihw_to_ohwi(const Tensor& w) {
  check4("oihw_to_ohwi", w);
  return nchw_to_nhwc(w);
}

}  // namespace dd::models
