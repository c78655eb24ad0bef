#include "models/inception.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/context.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "kernels/activation.h"
#include "kernels/concat.h"
#include "kernels/elementwise.h"
#include "kernels/pool2d.h"
#include "kernels/resize.h"

namespace dd::fid {
namespace {

// Batch norm's eps in torchvision's BasicConv2d, which pytorch-fid's weights were trained with.
constexpr double kBnEps = 1e-3;

bool ends_with(const std::string& s, const char* suffix) {
  const std::string t(suffix);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

Tensor avg_pool_3x3_exclusive(const Tensor& x) {
  return kernels::avg_pool2d_forward(x, {3, 1, 1, /*count_include_pad=*/false});
}

}  // namespace

// Reads the weights from a file, or (gen set) draws random ones in the same layout and records them in
// *out: the tests' and benchmarks' stand-in for pytorch-fid's file.
struct InceptionLoader {
  const SafeTensorsFile& f;
  Device dev;
  Generator* gen = nullptr;
  SafeTensorsFile* out = nullptr;

  // Normal(0, scale) or, with lo < hi, uniform on [lo, hi), via a Philox normal's CDF-free mapping: the
  // exact distribution does not matter, only that activations stay O(1) through the 94 layers.
  Tensor draw(const std::string& name, const Shape& shape, double scale, double lo, double hi) const {
    Tensor t = gen->randn(shape);
    float* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i)
      p[i] = lo < hi ? static_cast<float>(lo + (hi - lo) * (0.5 + 0.5 * std::erf(p[i] / std::sqrt(2.0))))
                     : static_cast<float>(p[i] * scale);
    out->put_f32(name, t);
    return t;
  }

  Tensor get(const std::string& name, const Shape& shape) const {
    if (gen) {
      if (shape.size() == 4) return draw(name, shape, std::sqrt(2.0 / static_cast<double>(shape[1] * shape[2] * shape[3])), 0, 0);
      if (ends_with(name, "bn.weight")) return draw(name, shape, 0, 0.5, 1.5);
      if (ends_with(name, "running_var")) return draw(name, shape, 0, 0.5, 2.0);
      return draw(name, shape, 0, -0.2, 0.2);  // bn.bias, running_mean
    }
    const SafeTensor& t = f.at(name);  // names the file and what it holds when absent
    DD_CHECK(t.shape == shape, "Inception weights ", f.source, ": ", name, " has shape ", shape_str(t.shape),
             ", expected ", shape_str(shape), " (pytorch-fid's FID Inception-v3; see scripts/convert_inception.py)");
    return t.to_f32();
  }

  // name.conv.weight [Co, Ci, KH, KW] (OIHW) and name.bn.{weight,bias,running_mean,running_var} [Co].
  InceptionV3::Conv conv(const std::string& name, int ci, int co, int kh, int kw, int stride = 1, int ph = 0,
                         int pw = 0) const {
    const Tensor w = get(name + ".conv.weight", {co, ci, kh, kw});
    const Tensor gamma = get(name + ".bn.weight", {co});
    const Tensor beta = get(name + ".bn.bias", {co});
    const Tensor mean = get(name + ".bn.running_mean", {co});
    const Tensor var = get(name + ".bn.running_var", {co});
    const int64_t per = static_cast<int64_t>(ci) * kh * kw;
    Tensor wf = Tensor::empty({co, kh, kw, ci});
    Tensor bf = Tensor::empty({co});
    for (int o = 0; o < co; ++o) {
      const double v = var.data()[o];
      DD_CHECK(std::isfinite(v) && v + kBnEps > 0, "Inception weights ", f.source, ": ", name,
               ".bn.running_var[", o, "] = ", v, " is not a variance");
      const double s = gamma.data()[o] / std::sqrt(v + kBnEps);
      bf.data()[o] = static_cast<float>(beta.data()[o] - mean.data()[o] * s);
      const float* src = w.data() + o * per;  // [ci][kh][kw]
      float* dst = wf.data() + o * per;       // [kh][kw][ci]
      for (int c = 0; c < ci; ++c)
        for (int y = 0; y < kh; ++y)
          for (int x = 0; x < kw; ++x)
            dst[(y * kw + x) * ci + c] = static_cast<float>(src[(c * kh + y) * kw + x] * s);
    }
    InceptionV3::Conv folded;
    folded.w = wf.to(dev);
    folded.b = bf.to(dev);
    folded.geo = {stride, ph, pw, ph, pw};
    return folded;
  }
};


Tensor InceptionV3::Conv::operator()(const Tensor& x) const {
  return kernels::relu_forward(kernels::conv2d_forward(x, w, b, geo));
}

InceptionV3 InceptionV3::load(const std::string& path, Device dev) {
  const SafeTensorsFile f = load_safetensors(path);
  InceptionV3 m = build(InceptionLoader{f, dev});
  m.source_ = path;
  auto it = f.metadata.find("dd_inception_official");
  m.official_ = it != f.metadata.end() && it->second == "true";
  return m;
}

InceptionV3 InceptionV3::random(uint64_t seed, Device dev, SafeTensorsFile* weights_out) {
  SafeTensorsFile none, drawn;
  Generator gen(seed);
  InceptionV3 m = build(InceptionLoader{none, dev, &gen, &drawn});
  m.source_ = "random weights (seed " + std::to_string(seed) + ")";
  if (weights_out) *weights_out = std::move(drawn);
  return m;
}

InceptionV3 InceptionV3::build(const InceptionLoader& L) {
  InceptionV3 m;
  m.dev_ = L.dev;

  m.c1a = L.conv("Conv2d_1a_3x3", 3, 32, 3, 3, 2);
  m.c2a = L.conv("Conv2d_2a_3x3", 32, 32, 3, 3);
  m.c2b = L.conv("Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1);
  m.c3b = L.conv("Conv2d_3b_1x1", 64, 80, 1, 1);
  m.c4a = L.conv("Conv2d_4a_3x3", 80, 192, 3, 3);

  auto block_a = [&](const std::string& n, int in, int pool) {
    BlockA a;
    a.b1x1 = L.conv(n + ".branch1x1", in, 64, 1, 1);
    a.b5x5_1 = L.conv(n + ".branch5x5_1", in, 48, 1, 1);
    a.b5x5_2 = L.conv(n + ".branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
    a.b3dbl_1 = L.conv(n + ".branch3x3dbl_1", in, 64, 1, 1);
    a.b3dbl_2 = L.conv(n + ".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    a.b3dbl_3 = L.conv(n + ".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
    a.pool = L.conv(n + ".branch_pool", in, pool, 1, 1);
    return a;
  };
  m.m5b = block_a("Mixed_5b", 192, 32);
  m.m5c = block_a("Mixed_5c", 256, 64);
  m.m5d = block_a("Mixed_5d", 288, 64);

  m.m6a.b3x3 = L.conv("Mixed_6a.branch3x3", 288, 384, 3, 3, 2);
  m.m6a.b3dbl_1 = L.conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1);
  m.m6a.b3dbl_2 = L.conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
  m.m6a.b3dbl_3 = L.conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2);

  auto block_c = [&](const std::string& n, int c7) {
    BlockC c;
    c.b1x1 = L.conv(n + ".branch1x1", 768, 192, 1, 1);
    c.b7_1 = L.conv(n + ".branch7x7_1", 768, c7, 1, 1);
    c.b7_2 = L.conv(n + ".branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    c.b7_3 = L.conv(n + ".branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    c.b7dbl_1 = L.conv(n + ".branch7x7dbl_1", 768, c7, 1, 1);
    c.b7dbl_2 = L.conv(n + ".branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    c.b7dbl_3 = L.conv(n + ".branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    c.b7dbl_4 = L.conv(n + ".branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    c.b7dbl_5 = L.conv(n + ".branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    c.pool = L.conv(n + ".branch_pool", 768, 192, 1, 1);
    return c;
  };
  m.m6b = block_c("Mixed_6b", 128);
  m.m6c = block_c("Mixed_6c", 160);
  m.m6d = block_c("Mixed_6d", 160);
  m.m6e = block_c("Mixed_6e", 192);

  m.m7a.b3_1 = L.conv("Mixed_7a.branch3x3_1", 768, 192, 1, 1);
  m.m7a.b3_2 = L.conv("Mixed_7a.branch3x3_2", 192, 320, 3, 3, 2);
  m.m7a.b7x3_1 = L.conv("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1);
  m.m7a.b7x3_2 = L.conv("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
  m.m7a.b7x3_3 = L.conv("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
  m.m7a.b7x3_4 = L.conv("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2);

  auto block_e = [&](const std::string& n, int in) {
    BlockE e;
    e.b1x1 = L.conv(n + ".branch1x1", in, 320, 1, 1);
    e.b3_1 = L.conv(n + ".branch3x3_1", in, 384, 1, 1);
    e.b3_2a = L.conv(n + ".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    e.b3_2b = L.conv(n + ".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    e.b3dbl_1 = L.conv(n + ".branch3x3dbl_1", in, 448, 1, 1);
    e.b3dbl_2 = L.conv(n + ".branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
    e.b3dbl_3a = L.conv(n + ".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    e.b3dbl_3b = L.conv(n + ".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    e.pool = L.conv(n + ".branch_pool", in, 192, 1, 1);
    return e;
  };
  m.m7b = block_e("Mixed_7b", 1280);
  m.m7c = block_e("Mixed_7c", 2048);
  return m;
}

Tensor InceptionV3::block_a(const BlockA& m, const Tensor& x) {
  Tensor b5 = m.b5x5_2(m.b5x5_1(x));
  Tensor b3 = m.b3dbl_3(m.b3dbl_2(m.b3dbl_1(x)));
  return kernels::concat({m.b1x1(x), b5, b3, m.pool(avg_pool_3x3_exclusive(x))});
}

Tensor InceptionV3::block_b(const BlockB& m, const Tensor& x) {
  Tensor b3 = m.b3dbl_3(m.b3dbl_2(m.b3dbl_1(x)));
  return kernels::concat({m.b3x3(x), b3, kernels::max_pool2d_forward(x, {3, 2, 0})});
}

Tensor InceptionV3::block_c(const BlockC& m, const Tensor& x) {
  Tensor b7 = m.b7_3(m.b7_2(m.b7_1(x)));
  Tensor b7dbl = m.b7dbl_5(m.b7dbl_4(m.b7dbl_3(m.b7dbl_2(m.b7dbl_1(x)))));
  return kernels::concat({m.b1x1(x), b7, b7dbl, m.pool(avg_pool_3x3_exclusive(x))});
}

Tensor InceptionV3::block_d(const BlockD& m, const Tensor& x) {
  Tensor b3 = m.b3_2(m.b3_1(x));
  Tensor b7 = m.b7x3_4(m.b7x3_3(m.b7x3_2(m.b7x3_1(x))));
  return kernels::concat({b3, b7, kernels::max_pool2d_forward(x, {3, 2, 0})});
}

Tensor InceptionV3::block_e(const BlockE& m, const Tensor& x, bool max_pool_branch) {
  Tensor b3 = m.b3_1(x);
  Tensor b3dbl = m.b3dbl_2(m.b3dbl_1(x));
  // pytorch-fid's E_2 (Mixed_7c) max-pools where torchvision average-pools: TensorFlow's graph does.
  Tensor pooled = max_pool_branch ? kernels::max_pool2d_forward(x, {3, 1, 1}) : avg_pool_3x3_exclusive(x);
  return kernels::concat({m.b1x1(x), m.b3_2a(b3), m.b3_2b(b3), m.b3dbl_3a(b3dbl), m.b3dbl_3b(b3dbl), m.pool(pooled)});
}

Tensor InceptionV3::features(const Tensor& images) const {
  const Shape& s = images.shape();
  DD_CHECK(s.size() == 4 && s[0] >= 1 && s[1] >= 1 && s[2] >= 1 && (s[3] == 1 || s[3] == 3),
           "Inception features: images must be [B, H, W, C] with C = 1 or 3, got ", shape_str(s));
  // FID is defined by pytorch-fid's fp32 network: a bf16 or tf32 training run measures with fp32 features.
  const PrecisionScope fp32(Precision::FP32);
  Tensor x = images.to(dev_);
  // Resizing to the same size is the identity in torch's arithmetic (every weight is exactly 0 or 1).
  if (s[1] != kInceptionSize || s[2] != kInceptionSize) x = kernels::resize_bilinear(x, kInceptionSize, kInceptionSize);
  x = kernels::affine(x, 2.0f, -1.0f);
  if (s[3] == 1) x = kernels::concat({x, x, x});  // channels are independent: replicate after the resize
  x = c2b(c2a(c1a(x)));
  x = kernels::max_pool2d_forward(x, {3, 2, 0});
  x = c4a(c3b(x));
  x = kernels::max_pool2d_forward(x, {3, 2, 0});
  x = block_a(m5d, block_a(m5c, block_a(m5b, x)));
  x = block_b(m6a, x);
  x = block_c(m6e, block_c(m6d, block_c(m6c, block_c(m6b, x))));
  x = block_d(m7a, x);
  x = block_e(m7c, block_e(m7b, x, false), true);
  return kernels::global_avg_pool_forward(x);
}

Tensor quantize_like_png(const Tensor& samples_pm1) {
  Tensor x = samples_pm1.to(Device::CPU).to(DType::F32);
  Tensor y = Tensor::empty(x.shape());
  const float* src = x.data();
  float* dst = y.data();
  for (int64_t i = 0; i < x.numel(); ++i) {
    // apps/report/image_grid.cpp's to_u8 (torchvision's save_image), then ToTensor's division.
    const float v = std::min(std::max((src[i] + 1.0f) * 0.5f, 0.0f), 1.0f);
    dst[i] = std::floor(v * 255.0f + 0.5f) / 255.0f;
  }
  return y;
}

}  // namespace dd::fid
