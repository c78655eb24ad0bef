// GPU convolution vs the CPU backend: forward, dx, dw, dbias over a sweep of
// kernel sizes, paddings, odd spatial sizes and channel counts that are not
// multiples of the 64 x 64 x 16 tiles, plus cases spanning several tiles.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d_tiles.cuh"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  int64_t b, h, w, ci, co, k, p;
  int64_t ho() const { return h + 2 * p - k + 1; }
  int64_t wo() const { return w + 2 * p - k + 1; }
  std::string str() const {
    return str_cat("B", b, " ", h, "x", w, " Ci", ci, " Co", co, " K", k, " p", p);
  }
};

Tensor random_tensor(Random& rng, const Shape& shape, double scale = 1.0) {
  return from_double(shape, rng.normal_f32(shape_numel(shape), scale));
}

Tensor gpu(const Tensor& t) { return t.defined() ? t.to(Device::CUDA) : Tensor(); }
Tensor cpu(const Tensor& t) { return t.to(Device::CPU); }

std::vector<float> host(const Tensor& t) { return t.to(Device::CPU).to_vector(); }

// Runs one case on both backends and compares what was asked for.
void check_case(Random& rng, const Case& c, bool with_bias, bool need_dx, bool need_dw, bool need_dbias) {
  const std::string what = c.str() + (with_bias ? " bias" : " no-bias");
  INFO(what);
  Tensor x = random_tensor(rng, {c.b, c.h, c.w, c.ci});
  Tensor w = random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor bias = with_bias ? random_tensor(rng, {c.co}) : Tensor();
  Tensor dy = random_tensor(rng, {c.b, c.ho(), c.wo(), c.co});
  Tensor gx = gpu(x), gw = gpu(w), gb = gpu(bias), gdy = gpu(dy);
  const int p = static_cast<int>(c.p);

  Tensor y = kernels::conv2d_forward(gx, gw, gb, p);
  REQUIRE(y.device() == Device::CUDA);
  REQUIRE(y.shape() == Shape{c.b, c.ho(), c.wo(), c.co});
  // fp32 sums of up to K*K*Ci (here <= 3430) terms, in a different order than the CPU: 1e-4 of the
  // terms' size (the same sums over |x|, |w|, |b|), which a tiny case can cancel far below.
  const Tensor x_abs = abs_tensor(x), w_abs = abs_tensor(w), dy_abs = abs_tensor(dy);
  expect_close("forward " + what, cpu(y), kernels::conv2d_forward(x, w, bias, p), 1e-4,
               max_element_of(kernels::conv2d_forward(x_abs, w_abs, abs_tensor(bias), p)));

  kernels::Conv2dGrads e = kernels::conv2d_backward(x, w, dy, p, need_dx, need_dw, need_dbias);
  const kernels::Conv2dGrads size = kernels::conv2d_backward(x_abs, w_abs, dy_abs, p, need_dx, need_dw, need_dbias);
  kernels::Conv2dGrads g = kernels::conv2d_backward(gx, gw, gdy, p, need_dx, need_dw, need_dbias);
  CHECK(g.dx.defined() == need_dx);
  CHECK(g.dw.defined() == need_dw);
  CHECK(g.dbias.defined() == need_dbias);
  // dx: sums of K*K*Co terms; dw and dbias: sums over B*Ho*Wo pixels (<= ~1000 here). fp32, other order:
  // 1e-4 of the terms' size, as above.
  if (need_dx && g.dx.defined()) {
    REQUIRE(g.dx.shape() == x.shape());
    expect_close("dx " + what, cpu(g.dx), e.dx, 1e-4, max_element_of(size.dx));
  }
  if (need_dw && g.dw.defined()) {
    REQUIRE(g.dw.shape() == w.shape());
    expect_close("dw " + what, cpu(g.dw), e.dw, 1e-4, max_element_of(size.dw));
  }
  if (need_dbias && g.dbias.defined()) {
    REQUIRE(g.dbias.shape() == Shape{c.co});
    expect_close("dbias " + what, cpu(g.dbias), e.dbias, 1e-4, max_element_of(size.dbias));
  }
}

struct KP {
  int64_t k, p;
};
}  // namespace

TEST_CASE("gpu: conv2d forward and backward match the cpu over a shape sweep", "[gpu][conv2d][sweep]") {
  DD_TEST_RANDOM(rng);
  // The U-Net's 1x1/p0 and 3x3/p1, a 7x7/p3 stem, and the unpadded 3x3.
  const std::vector<KP> kps = {{1, 0}, {3, 1}, {7, 3}, {3, 0}};
  const std::vector<std::pair<int64_t, int64_t>> hws = {{1, 1}, {5, 7}, {9, 9}, {17, 13}};
  const std::vector<int64_t> chans = {1, 3, 5, 33, 70};
  int index = 0;
  for (const KP& kp : kps)
    for (int64_t b : {1, 3})
      for (const auto& hw : hws)
        for (int64_t ci : chans)
          for (int64_t co : chans) {
            const Case c{b, hw.first, hw.second, ci, co, kp.k, kp.p};
            if (c.ho() < 1 || c.wo() < 1) continue;  // the kernel does not fit
            ++index;
            check_case(rng, c, index % 2 == 0, true, true, true);
          }
}

TEST_CASE("gpu: conv2d backward computes only what is asked for", "[gpu][conv2d]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {{2, 9, 9, 33, 5, 3, 1}, {3, 5, 7, 5, 70, 1, 0}, {1, 17, 13, 3, 33, 7, 3}};
  for (const Case& c : cases)
    for (int mask = 0; mask < 8; ++mask)
      check_case(rng, c, mask % 2 == 1, (mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0);
}

TEST_CASE("gpu: conv2d on shapes spanning several tiles in every GEMM dimension", "[gpu][conv2d]") {
  DD_TEST_RANDOM(rng);
  // M = 720 pixels (12 row tiles), N = 96 and Kd = 576 or 64 (several column and
  // reduction tiles); dw splits its 720-pixel reduction over several blocks.
  for (const KP& kp : std::vector<KP>{{3, 1}, {1, 0}, {3, 0}, {1, 1}})
    check_case(rng, {2, 20, 18, 64, 96, kp.k, kp.p}, true, true, true, true);
  // U-Net-like layers: 16x16x128 (3x3), and a to_qkv-like 1x1 to 384 channels.
  check_case(rng, {4, 16, 16, 128, 128, 3, 1}, true, true, true, true);
  check_case(rng, {2, 8, 8, 256, 384, 1, 0}, false, true, true, true);
  // Padding beyond K-1 (dx runs with a negative padding that crops).
  check_case(rng, {2, 6, 5, 7, 9, 3, 3}, true, true, true, true);
  check_case(rng, {1, 4, 3, 2, 5, 1, 2}, true, true, true, true);
}

TEST_CASE("gpu: conv2d results repeat bitwise", "[gpu][conv2d]") {
  DD_TEST_RANDOM(rng);
  const Case c{4, 16, 16, 64, 64, 3, 1};
  Tensor x = random_tensor(rng, {c.b, c.h, c.w, c.ci}).to(Device::CUDA);
  Tensor w = random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5).to(Device::CUDA);
  Tensor bias = random_tensor(rng, {c.co}).to(Device::CUDA);
  Tensor dy = random_tensor(rng, {c.b, c.ho(), c.wo(), c.co}).to(Device::CUDA);
  kernels::Conv2dGrads a = kernels::conv2d_backward(x, w, dy, 1, true, true, true);
  kernels::Conv2dGrads b = kernels::conv2d_backward(x, w, dy, 1, true, true, true);
  CHECK(host(kernels::conv2d_forward(x, w, bias, 1)) == host(kernels::conv2d_forward(x, w, bias, 1)));
  CHECK(host(a.dx) == host(b.dx));
  CHECK(host(a.dw) == host(b.dw));
  CHECK(host(a.dbias) == host(b.dbias));
}

TEST_CASE("gpu: conv2d im2col index math matches a direct loop", "[gpu][conv2d]") {
  // The kernels' gather helpers are __host__ __device__: check them on the host
  // against the plain (b, oh, ow, kh, kw, ci) loop, including negative padding.
  namespace cv = dd::kernels::cuda::conv;
  const std::vector<Case> cases = {
      {2, 5, 7, 3, 1, 3, 1}, {1, 4, 3, 2, 1, 7, 3}, {3, 6, 5, 4, 1, 3, -1}, {5, 1, 1, 2, 1, 1, 0}, {3, 40, 37, 1, 1, 1, 0}};
  for (const Case& c : cases) {
    INFO(c.str());
    const cv::Geom g{int(c.b), int(c.h), int(c.w), int(c.ci), int(c.k), int(c.p), int(c.ho()), int(c.wo())};
    std::vector<float> x(static_cast<std::size_t>(c.b * c.h * c.w * c.ci));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i + 1);
    int m = 0;
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t oh = 0; oh < c.ho(); ++oh)
        for (int64_t ow = 0; ow < c.wo(); ++ow, ++m) {
          const cv::PixelBase pb = cv::pixel_base(g, m);
          // The dw kernel's cursor reaches pixel m from m - 16, m - 32, ... by steps of 16.
          cv::PixelCursor cur = cv::pixel_cursor(g, m % 16);
          for (int s = m % 16; s < m; s += 16) cur.advance(g, 16);
          const cv::PixelBase pc = cur.base(g);
          REQUIRE((pc.image == pb.image && pc.ih0 == pb.ih0 && pc.iw0 == pb.iw0));
          int kk = 0;
          for (int64_t kh = 0; kh < c.k; ++kh)
            for (int64_t kw = 0; kw < c.k; ++kw)
              for (int64_t ci = 0; ci < c.ci; ++ci, ++kk) {
                const cv::Tap t = cv::tap_of(g, kk);
                REQUIRE((t.kh == kh && t.kw == kw && t.ci == ci));
                const int64_t ih = oh + kh - c.p, iw = ow + kw - c.p;
                const bool inside = ih >= 0 && ih < c.h && iw >= 0 && iw < c.w;
                const float expected = inside ? x[static_cast<std::size_t>(((b * c.h + ih) * c.w + iw) * c.ci + ci)] : 0.0f;
                REQUIRE(cv::gather(x.data(), g, pb, t) == expected);
              }
        }
  }
}
