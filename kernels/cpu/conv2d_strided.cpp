// Convolution with a stride, per-side padding and a KH x KW kernel (kernels/conv2d.h, Conv2dGeometry):
// the geometries the stride-1 square kernels of conv2d.cpp do not cover (diffusers' Downsample2D,
// Inception-v3's 1x7 / 7x1 / 1x3 / 3x1 convs).
//
// Lowered to GEMMs over im2col chunks as conv2d.cpp: the pixels are cut into chunks of a fixed
// size (from the shapes alone), each chunk gathers its patches and runs a single-threaded Eigen
// GEMM, so every output element is computed by exactly one GEMM in a fixed order: results are
// bitwise the same for any thread count.
//   forward  y[p, o]  = col(x)[p, (kh,kw,ci)] w[o, (kh,kw,ci)]
//   dw       dw[o, j] = sum_p dy[p, o] col(x)[p, j], over a fixed number of partials added in order
//   dx       dx[q, ci] = sum_{kh,kw,o} dyg[q, (kh,kw,o)] w[o, kh, kw, ci], where for the input pixel
//            q = (b, ih, iw) dyg gathers dy[b, (ih + pt - kh) / s, (iw + pl - kw) / s, o] when both
//            divisions are exact and land inside dy (0 otherwise): a gather, no scatter, no races.
#include <algorithm>
#include <cstring>
#include <memory>

#include "kernels/conv2d.h"
#include "kernels/cpu/gemm.h"

namespace dd::kernels::cpu {

namespace {
constexpr int64_t kChunkBytes = int64_t{1} << 20;
constexpr int64_t kMinChunkRows = 32;
constexpr int64_t kWeightPartials = 8;

struct SGeom {
  int64_t b, h, w, ci, co, kh, kw, s, pt, pl, ho, wo;
  int64_t taps() const { return kh * kw; }
  int64_t cols() const { return taps() * ci; }
  int64_t out_pixels() const { return b * ho * wo; }
  int64_t in_pixels() const { return b * h * w; }
};

SGeom make_geom(const Tensor& x, const Tensor& w, const Conv2dGeometry& g) {
  SGeom r{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(1), w.dim(2), g.stride, g.pad_top, g.pad_left,
          0, 0};
  r.ho = (r.h + g.pad_top + g.pad_bottom - r.kh) / r.s + 1;
  r.wo = (r.w + g.pad_left + g.pad_right - r.kw) / r.s + 1;
  return r;
}

int64_t chunk_rows(int64_t cols, int64_t rows_total) {
  const int64_t fit = kChunkBytes / (cols * int64_t{sizeof(float)});
  return std::max<int64_t>(1, std::min(std::max(kMinChunkRows, fit), rows_total));
}

// col[r - r0, (kh, kw, ci)] for output pixels r in [r0, r1).
void im2col(const float* x, const SGeom& g, int64_t r0, int64_t r1, float* col) {
  const int64_t cols = g.cols();
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / (g.ho * g.wo), oh = (r / g.wo) % g.ho, ow = r % g.wo;
    float* dst = col + (r - r0) * cols;
    for (int64_t kh = 0; kh < g.kh; ++kh)
      for (int64_t kw = 0; kw < g.kw; ++kw, dst += g.ci) {
        const int64_t ih = oh * g.s + kh - g.pt, iw = ow * g.s + kw - g.pl;
        if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w)
          std::fill(dst, dst + g.ci, 0.0f);
        else
          std::memcpy(dst, x + ((b * g.h + ih) * g.w + iw) * g.ci, static_cast<std::size_t>(g.ci) * sizeof(float));
      }
  }
}

// dyg[q - q0, (kh, kw, o)] for input pixels q in [q0, q1).
void gather_dy(const float* dy, const SGeom& g, int64_t q0, int64_t q1, float* col) {
  const int64_t cols = g.taps() * g.co;
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t b = q / (g.h * g.w), ih = (q / g.w) % g.h, iw = q % g.w;
    float* dst = col + (q - q0) * cols;
    for (int64_t kh = 0; kh < g.kh; ++kh)
      for (int64_t kw = 0; kw < g.kw; ++kw, dst += g.co) {
        const int64_t nh = ih + g.pt - kh, nw = iw + g.pl - kw;
        const bool ok = nh >= 0 && nw >= 0 && nh % g.s == 0 && nw % g.s == 0 && nh / g.s < g.ho && nw / g.s < g.wo;
        if (!ok)
          std::fill(dst, dst + g.co, 0.0f);
        else
          std::memcpy(dst, dy + ((b * g.ho + nh / g.s) * g.wo + nw / g.s) * g.co,
                      static_cast<std::size_t>(g.co) * sizeof(float));
      }
  }
}
}  // namespace

Tensor conv2d_strided_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo) {
  const SGeom g = make_geom(x, w, geo);
  Tensor y = Tensor::empty({g.b, g.ho, g.wo, g.co});
  const int64_t cols = g.cols(), rows = chunk_rows(cols, g.out_pixels());
  const int64_t chunks = (g.out_pixels() + rows - 1) / rows;
  const float* px = x.data();
  const float* pb = bias.defined() ? bias.data() : nullptr;
  float* py = y.data();
  ConstMatMap wm(w.data(), g.co, cols);
#pragma omp parallel if (chunks > 1)
  {
    std::unique_ptr<float[]> col(new float[static_cast<std::size_t>(rows * cols)]);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * rows, r1 = std::min(r0 + rows, g.out_pixels()), n = r1 - r0;
      im2col(px, g, r0, r1, col.get());
      MatMap ym(py + r0 * g.co, n, g.co);
      if (pb)
        ym.rowwise() = ConstVecMap(pb, g.co);
      else
        ym.setZero();
      ym.noalias() += ConstMatMap(col.get(), n, cols) * wm.transpose();
    }
  }
  return y;
}

Conv2dGrads conv2d_strided_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                                    bool need_dx, bool need_dw, bool need_dbias) {
  const SGeom g = make_geom(x, w, geo);
  Conv2dGrads out;
  const float* pdy = dy.data();
  if (need_dbias) {
    out.dbias = Tensor::empty({g.co});
    column_sums(pdy, g.out_pixels(), g.co, out.dbias.data());
  }
  if (need_dw) {
    out.dw = Tensor::empty(w.shape());
    const int64_t cols = g.cols(), wn = g.co * cols, rows = chunk_rows(cols, g.out_pixels());
    const int64_t chunks = (g.out_pixels() + rows - 1) / rows, parts = std::min(chunks, kWeightPartials);
    std::unique_ptr<float[]> extra(new float[static_cast<std::size_t>(std::max<int64_t>(1, (parts - 1) * wn))]);
    float* dw = out.dw.data();
    const float* px = x.data();
#pragma omp parallel if (parts > 1)
    {
      std::unique_ptr<float[]> col(new float[static_cast<std::size_t>(rows * cols)]);
#pragma omp for schedule(static)
      for (int64_t p = 0; p < parts; ++p) {
        MatMap acc(p == 0 ? dw : extra.get() + (p - 1) * wn, g.co, cols);
        acc.setZero();
        for (int64_t c = p * chunks / parts; c < (p + 1) * chunks / parts; ++c) {
          const int64_t r0 = c * rows, r1 = std::min(r0 + rows, g.out_pixels()), n = r1 - r0;
          im2col(px, g, r0, r1, col.get());
          acc.noalias() += ConstMatMap(pdy + r0 * g.co, n, g.co).transpose() * ConstMatMap(col.get(), n, cols);
        }
      }
    }
    for (int64_t p = 1; p < parts; ++p) {
      const float* src = extra.get() + (p - 1) * wn;
      for (int64_t i = 0; i < wn; ++i) dw[i] += src[i];
    }
  }
  if (need_dx) {
    out.dx = Tensor::empty(x.shape());
    const int64_t cols = g.taps() * g.co, rows = chunk_rows(cols, g.in_pixels());
    const int64_t chunks = (g.in_pixels() + rows - 1) / rows;
    float* pdx = out.dx.data();
    const float* pw = w.data();
#pragma omp parallel if (chunks > 1)
    {
      std::unique_ptr<float[]> col(new float[static_cast<std::size_t>(rows * cols)]);
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t q0 = c * rows, q1 = std::min(q0 + rows, g.in_pixels()), n = q1 - q0;
        gather_dy(pdy, g, q0, q1, col.get());
        MatMap xm(pdx + q0 * g.ci, n, g.ci);
        xm.setZero();
        for (int64_t t = 0; t < g.taps(); ++t) {
          // Tap t of w: the [co, ci] slice at (kh, kw), rows KH*KW*ci apart.
          const ConstSlice col_tap(col.get() + t * g.co, n, g.co, Eigen::OuterStride<>(cols));
          const ConstSlice w_tap(pw + t * g.ci, g.co, g.ci, Eigen::OuterStride<>(g.cols()));
          xm.noalias() += col_tap * w_tap;
        }
      }
    }
  }
  return out;
}

}  // namespace dd::kernels::cpu
