#include "kernels/conv2d.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/channel_parts.h"
#include "kernels/cpu/channel_sums.h"
#include "kernels/cpu/chunk_stats.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/operand_rounding.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/linear_view.h"
#include "kernels/linear.h"
#include "kernels/upsample.h"

// Lowering: the im2col matrix has one row per output pixel (b, oh, ow) holding
// the K x K x Ci patch in (kh, kw, ci) order, the order of OHWI's inner dims,
// so w is a row-major [Co, K*K*Ci] matrix and y = col w^T.
//
// The pixels are cut into chunks whose column buffer fits in a core's cache,
// and the chunks run in parallel, each building its columns and calling a
// single-threaded Eigen GEMM (Eigen does not thread inside a parallel region).
// A 64 MB buffer feeding Eigen's own threaded GEMM ran 3-4x slower on the
// U-Net's 28x28x32 layers (the buffer streams through memory); with cache-sized
// chunks both schemes are about equal on 2 cores, and this one needs no col2im
// and no thread-dependent GEMM blocking. Every output element is computed by
// exactly one GEMM, and the chunk layout depends only on the shapes, so results
// are bitwise the same run to run and for any thread count.
//
// Backward: dx is itself a stride-1 conv (the "full" conv of dy with the
// spatially flipped, channel-transposed kernel and padding K-1-p), so it runs
// the same chunked im2col and gathers: no col2im scatter, no races. dw sums
// dy^T col over chunks into a fixed number of partials, added in order.
namespace dd::kernels::cpu {

namespace {
// A chunk's column buffer: about 1 MB, i.e. resident in L2 with the GEMM's packed panels.
constexpr int64_t kChunkBytes = int64_t{1} << 20;
constexpr int64_t kMinChunkRows = 64;   // below this the GEMM's fixed costs dominate
constexpr int64_t kMinChunks = 8;       // enough work items for load balance
constexpr int64_t kWeightPartials = 8;  // dw partial sums (fixed: results do not depend on threads)

struct Geom {
  int64_t b, h, w, ci, co, k, p;  // p < 0 crops (used by dx when padding > K - 1)
  int64_t ho, wo;
  int64_t pixels() const { return b * ho * wo; }  // rows of the im2col matrix
  int64_t cols() const { return k * k * ci; }
};

Geom make_geom(int64_t b, int64_t h, int64_t w, int64_t ci, int64_t co, int64_t k, int64_t p) {
  return {b, h, w, ci, co, k, p, h + 2 * p - k + 1, w + 2 * p - k + 1};
}

int64_t chunk_rows_for(const Geom& g, int64_t requested) {
  int64_t rows = requested;
  if (rows <= 0) {
    const int64_t fit = kChunkBytes / (g.cols() * int64_t{sizeof(float)});
    const int64_t split = (g.pixels() + kMinChunks - 1) / kMinChunks;
    rows = std::max(kMinChunkRows, std::min(fit, split));
  }
  return std::max<int64_t>(1, std::min(rows, g.pixels()));
}

// col[r - r0, (kh, kw, ci)] = x[b, oh + kh - p, ow + kw - p, ci] (0 outside x) for the
// pixels r = (b, oh, ow) in [r0, r1). For fixed (r, kh) the taps that land inside
// x are one contiguous run of an x row, copied at once (gathered from x's parts).
void im2col(const ChannelParts& x, const Geom& g, int64_t r0, int64_t r1, float* col) {
  const int64_t kc = g.k * g.ci, cols = g.cols();
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / (g.ho * g.wo), oh = (r / g.wo) % g.ho, ow = r % g.wo;
    const int64_t iw0 = ow - g.p;
    const int64_t kw_lo = std::max<int64_t>(0, -iw0), kw_hi = std::min<int64_t>(g.k, g.w - iw0);
    float* dst_row = col + (r - r0) * cols;
    for (int64_t kh = 0; kh < g.k; ++kh) {
      float* dst = dst_row + kh * kc;
      const int64_t ih = oh - g.p + kh;
      if (ih < 0 || ih >= g.h || kw_lo >= kw_hi) {
        std::fill(dst, dst + kc, 0.0f);
        continue;
      }
      std::fill(dst, dst + kw_lo * g.ci, 0.0f);
      x.gather((b * g.h + ih) * g.w + iw0 + kw_lo, kw_hi - kw_lo, dst + kw_lo * g.ci);
      std::fill(dst + kw_hi * g.ci, dst + kc, 0.0f);
    }
  }
}

// y [pixels, co] = col(x) w^T (+ bias); w is [co, cols] row-major, bias may be null. With sums,
// also y's per-(image, channel) sums and sums of squares, each chunk's taken right after its GEMM.
void conv_gemm(const ChannelParts& x, const Geom& g, const float* w, const float* bias, float* y, int64_t chunk_rows,
               std::vector<double>* sums = nullptr) {
  const int64_t rows = chunk_rows_for(g, chunk_rows), cols = g.cols();
  const int64_t chunks = (g.pixels() + rows - 1) / rows;
  ConstMatMap wm(w, g.co, cols);
  std::unique_ptr<ChunkStats> stats(sums ? new ChunkStats(g.b, g.ho * g.wo, rows, g.co) : nullptr);
#pragma omp parallel if (chunks > 1)
  {
    std::unique_ptr<float[]> col(new float[static_cast<std::size_t>(rows * cols)]);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * rows, r1 = std::min(r0 + rows, g.pixels()), n = r1 - r0;
      im2col(x, g, r0, r1, col.get());
      MatMap ym(y + r0 * g.co, n, g.co);
      // The GEMM accumulates onto the broadcast bias: one pass over y.
      if (bias)
        ym.rowwise() = ConstVecMap(bias, g.co);
      else
        ym.setZero();
      ym.noalias() += ConstMatMap(col.get(), n, cols) * wm.transpose();
      if (stats) stats->add_pixel_rows(c, r0, r1, y);
    }
  }
  if (stats) *sums = stats->fold();
}

// dw [co, cols] = sum over pixels of dy^T col(x). Partial p sums a fixed,
// contiguous range of chunks; the partials are then added in order.
void conv_weight_grad(const ChannelParts& x, const Geom& g, const float* dy, float* dw, int64_t chunk_rows) {
  const int64_t rows = chunk_rows_for(g, chunk_rows), cols = g.cols(), wn = g.co * cols;
  const int64_t chunks = (g.pixels() + rows - 1) / rows;
  const int64_t parts = std::min(chunks, kWeightPartials);
  std::unique_ptr<float[]> extra(new float[static_cast<std::size_t>((parts - 1) * wn)]);
#pragma omp parallel if (parts > 1)
  {
    std::unique_ptr<float[]> col(new float[static_cast<std::size_t>(rows * cols)]);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < parts; ++p) {
      MatMap acc(p == 0 ? dw : extra.get() + (p - 1) * wn, g.co, cols);
      acc.setZero();
      for (int64_t c = p * chunks / parts; c < (p + 1) * chunks / parts; ++c) {
        const int64_t r0 = c * rows, r1 = std::min(r0 + rows, g.pixels()), n = r1 - r0;
        im2col(x, g, r0, r1, col.get());
        acc.noalias() += ConstMatMap(dy + r0 * g.co, n, g.co).transpose() * ConstMatMap(col.get(), n, cols);
      }
    }
  }
  for (int64_t p = 1; p < parts; ++p) {
    const float* src = extra.get() + (p - 1) * wn;
#pragma omp parallel for simd schedule(static) if (wn > (1 << 16))
    for (int64_t i = 0; i < wn; ++i) dw[i] += src[i];
  }
}

// dx [pixels of x, ci] = col(dy) wt^T with wt[ci, (kh, kw, co)] = w[co, K-1-kh, K-1-kw, ci]: dx as
// a conv of dy (geometry gd: dy in, ci out, padding K-1-p). wt is never built: tap (kh, kw) of
// wt^T is w's [co, ci] slice at (K-1-kh, K-1-kw), read in place (row stride K*K*ci), so the
// product runs as K*K GEMMs over column slices of the im2col buffer. Building wt cost a strided
// pass over the whole weight per call, which dominated the deep levels (4x4 maps, 512 channels:
// 14 MB of scattered reads for under 1 GFLOP of GEMM). dx in parts: each chunk's rows are
// computed into a buffer in cache and scattered to the parts.
void conv_dx_gemm(const float* dy, const Geom& gd, const float* w, const ChannelPartsOut& dx, int64_t chunk_rows) {
  const int64_t rows = chunk_rows_for(gd, chunk_rows), cols = gd.cols();
  const int64_t chunks = (gd.pixels() + rows - 1) / rows;
  const int64_t k = gd.k, co = gd.ci, ci = gd.co;
  const ChannelParts src(dy, co);
#pragma omp parallel if (chunks > 1)
  {
    std::unique_ptr<float[]> col(new float[static_cast<std::size_t>(rows * cols)]);
    std::unique_ptr<RowBuffer> out(dx.plain() ? nullptr : new RowBuffer(rows, ci));
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * rows, r1 = std::min(r0 + rows, gd.pixels()), n = r1 - r0;
      im2col(src, gd, r0, r1, col.get());
      MatMap xm(out ? out->at(r0) : dx.part[0] + r0 * ci, n, ci);
      xm.setZero();
      for (int64_t kh = 0; kh < k; ++kh)
        for (int64_t kw = 0; kw < k; ++kw) {
          const ConstSlice col_tap(col.get() + (kh * k + kw) * co, n, co, Eigen::OuterStride<>(cols));
          const ConstSlice w_tap(w + ((k - 1 - kh) * k + (k - 1 - kw)) * ci, co, ci, Eigen::OuterStride<>(k * k * ci));
          xm.noalias() += col_tap * w_tap;
        }
      if (out) dx.scatter(out->at(r0), r0, n);
    }
  }
}
}  // namespace

namespace {
struct RoundedParts {  // x's parts under the context's operand rounding, and their view
  std::vector<Tensor> xs;
  ChannelParts view;
};
RoundedParts rounded_parts(const std::vector<Tensor>& xs_in, OperandRounding r) {
  RoundedParts p;
  for (const Tensor& x : xs_in) {
    p.xs.push_back(rounded(x, r));
    p.view.add(p.xs.back().data(), x.dim(3));
  }
  return p;
}

std::vector<Tensor> flat_parts(const std::vector<Tensor>& xs, int64_t rows) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(x.reshape({rows, x.dim(3)}));
  return out;
}

// How the conv reads its one-part x: as it is, upsample2x(x), or pixel_unshuffle(x)
// (ChannelParts::upsampled / unshuffled): the U-Net's Upsample and Downsample, never built.
enum class Read { Plain, Up2, Unshuffle2 };

// The geometry of x's parts as the conv reads them, the view set to match.
Geom read_geom(const std::vector<Tensor>& xs, Read read, const Tensor& w, int padding, ChannelParts* view) {
  const Tensor& x0 = xs.front();
  int64_t ci = 0;
  for (const Tensor& x : xs) ci += x.dim(3);
  int64_t h = x0.dim(1), wd = x0.dim(2);
  if (read == Read::Up2) h *= 2, wd *= 2;
  if (read == Read::Unshuffle2) h /= 2, wd /= 2, ci *= 4;
  if (read == Read::Up2) view->upsampled(h, wd);
  if (read == Read::Unshuffle2) view->unshuffled(h, wd);
  return make_geom(x0.dim(0), h, wd, ci, w.dim(0), w.dim(1), padding);
}

Tensor forward(const std::vector<Tensor>& xs_in, const Tensor& w_in, const Tensor& bias, int padding,
               int64_t chunk_rows, std::vector<double>* sums, Read read = Read::Plain) {
  // Under TF32/BF16 the operands the GPU's tensor-core kernels round (kernels/cpu/operand_rounding.h).
  const Precision prec = current_context().precision();
  const OperandRounding r = conv_rounding(prec);
  RoundedParts x = rounded_parts(xs_in, r);
  const Tensor w = rounded(w_in, r);
  const Geom g = read_geom(x.xs, read, w, padding, &x.view);
  if (g.k == 1 && g.p == 0 && read != Read::Up2) {  // a 1x1 conv without padding is a linear layer over the pixels
    Tensor y;
    if (read == Read::Unshuffle2) {  // under the linear layer's rounding too, as linear_forward would
      const Tensor xr = rounded(x.xs.front(), gemm_rounding(prec));
      ChannelParts v(xr.data(), xr.dim(3));
      v.unshuffled(g.h, g.w);
      y = linear_forward_view(v, g.pixels(), w.reshape({g.co, g.ci}), bias);
    } else {
      y = linear_forward_parts(flat_parts(x.xs, g.pixels()), w.reshape({g.co, g.ci}), bias);
    }
    y = y.reshape({g.b, g.ho, g.wo, g.co});
    if (sums) {  // no epilogue here (Eigen's GEMM over all pixels): a pass over y
      const float* py = y.data();
      const int64_t c = g.co;
      *sums = norm::channel_sums<2>(norm::Dims(y, 1), [py, c](int64_t, int64_t off, double* acc) {
        ChunkStats::add_rows(acc, py + off, 1, c);
      });
    }
    return y;
  }
  Tensor y = Tensor::empty({g.b, g.ho, g.wo, g.co});
  // 3x3/p1 (the U-Net's ResNet convs): Winograd F(2x2) or F(4x4) where the rule measured it faster
  // (kernels/cpu/conv2d_winograd_rules.cpp); chunk_rows then counts tiles per chunk.
  if (const int tile = g.k == 3 && g.p == 1 ? use_winograd(g.b, g.h, g.w, g.ci, g.co) : 0) {
    winograd_conv3x3(x.view, g.b, g.h, g.w, w.data(), g.co, false, bias.defined() ? bias.data() : nullptr,
                     ChannelPartsOut(y.data(), g.co), tile, chunk_rows, sums);
    return y;
  }
  conv_gemm(x.view, g, w.data(), bias.defined() ? bias.data() : nullptr, y.data(), chunk_rows, sums);
  return y;
}

Conv2dPartsGrads backward(const std::vector<Tensor>& xs_in, const Tensor& w_in, const Tensor& dy_in, int padding,
                          bool need_dx, bool need_dw, bool need_dbias, int64_t chunk_rows, Read read = Read::Plain) {
  const bool up = read == Read::Up2;
  const OperandRounding r = conv_rounding(current_context().precision());
  RoundedParts x = rounded_parts(xs_in, need_dw ? r : OperandRounding::None);
  const Geom g = read_geom(x.xs, read, w_in, padding, &x.view);
  Conv2dPartsGrads out;
  if (need_dbias) {  // the unrounded dy, as conv2d.cu's column sums
    out.dbias = Tensor::empty({g.co});
    column_sums(dy_in.data(), g.pixels(), g.co, out.dbias.data());
  }
  const Tensor dy = rounded(dy_in, r);
  const Tensor w = need_dx ? rounded(w_in, r) : w_in;
  if (g.k == 1 && g.p == 0 && read == Read::Unshuffle2) {  // the linear layer through the view
    const Tensor xr = need_dw ? rounded(x.xs.front(), gemm_rounding(current_context().precision())) : x.xs.front();
    ChannelParts v(xr.data(), xr.dim(3));
    v.unshuffled(g.h, g.w);
    ChannelPartsOut dx;
    if (need_dx) {
      out.dx.push_back(Tensor::empty(xs_in.front().shape()));
      dx.add(out.dx.back().data(), xs_in.front().dim(3));
      dx.unshuffled(g.h, g.w);
    }
    Tensor dw;
    linear_backward_view(v, g.pixels(), w.reshape({g.co, g.ci}), dy.reshape({g.pixels(), g.co}),
                         need_dx ? &dx : nullptr, need_dw ? &dw : nullptr);
    if (need_dw) out.dw = dw.reshape(w.shape());
    return out;
  }
  if (g.k == 1 && g.p == 0 && !up) {
    LinearPartsGrads lg = linear_backward_parts(flat_parts(x.xs, g.pixels()), w.reshape({g.co, g.ci}),
                                                dy.reshape({g.pixels(), g.co}), need_dx, need_dw);
    if (need_dx)
      for (std::size_t i = 0; i < lg.dx.size(); ++i) out.dx.push_back(lg.dx[i].reshape(xs_in[i].shape()));
    if (need_dw) out.dw = lg.dw.reshape(w.shape());
    return out;
  }
  if (need_dw) {
    out.dw = Tensor::empty(w.shape());
    if (const int tile = g.k == 3 && g.p == 1 ? use_winograd_dw(g.b, g.h, g.w, g.ci, g.co) : 0)
      winograd_weight_grad3x3(x.view, g.b, g.h, g.w, dy.data(), g.co, out.dw.data(), tile, chunk_rows);
    else
      conv_weight_grad(x.view, g, dy.data(), out.dw.data(), chunk_rows);
  }
  if (need_dx) {
    // dx[b,ih,iw,ci] = sum_{kh,kw,co} dy[b, ih+p-kh, iw+p-kw, co] w[co,kh,kw,ci]:
    // a conv of dy (Ci outputs) with the flipped kernel and padding K-1-p, written into x's parts.
    const Geom gd = make_geom(g.b, g.ho, g.wo, g.co, g.ci, g.k, g.k - 1 - g.p);
    // Upsampled: dx of the upsampled map, then upsample2x's backward (its 2x2 block sums).
    Tensor dx_up;
    ChannelPartsOut dx;
    if (up) {
      dx_up = Tensor::empty({g.b, g.h, g.w, g.ci});
      dx.add(dx_up.data(), g.ci);
    } else {
      for (const Tensor& xi : xs_in) {
        out.dx.push_back(Tensor::empty(xi.shape()));
        dx.add(out.dx.back().data(), xi.dim(3));
      }
      if (read == Read::Unshuffle2) dx.unshuffled(g.h, g.w);
    }
    // For 3x3/p1, gd is again 3x3/p1: the forward's Winograd with the rotated, transposed kernel.
    if (const int tile = gd.k == 3 && gd.p == 1 ? use_winograd(gd.b, gd.h, gd.w, gd.ci, gd.co) : 0)
      winograd_conv3x3(ChannelParts(dy.data(), gd.ci), gd.b, gd.h, gd.w, w.data(), gd.co, true, nullptr, dx, tile,
                       chunk_rows);
    else
      conv_dx_gemm(dy.data(), gd, w.data(), dx, chunk_rows);
    if (up) out.dx.push_back(upsample2x_backward(dx_up));
  }
  return out;
}

Conv2dGrads single(Conv2dPartsGrads g) {
  Conv2dGrads out;
  if (!g.dx.empty()) out.dx = std::move(g.dx.front());
  out.dw = std::move(g.dw);
  out.dbias = std::move(g.dbias);
  return out;
}
}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, int64_t chunk_rows) {
  return forward({x}, w, bias, padding, chunk_rows, nullptr);
}

Tensor conv2d_forward_sums(const Tensor& x, const Tensor& w, const Tensor& bias, int padding,
                           std::vector<double>& sums, int64_t chunk_rows) {
  return forward({x}, w, bias, padding, chunk_rows, &sums);
}

Tensor conv2d_forward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                            int64_t chunk_rows) {
  return forward(xs, w, bias, padding, chunk_rows, nullptr);
}

Tensor conv2d_forward_parts_sums(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                                 std::vector<double>& sums, int64_t chunk_rows) {
  return forward(xs, w, bias, padding, chunk_rows, &sums);
}

Tensor conv2d_forward_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  return conv2d_forward(x, w, bias, padding).to(DType::BF16);
}

Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias, int64_t chunk_rows) {
  return single(backward({x}, w, dy, padding, need_dx, need_dw, need_dbias, chunk_rows));
}

Conv2dPartsGrads conv2d_backward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& dy, int padding,
                                       bool need_dx, bool need_dw, bool need_dbias, int64_t chunk_rows) {
  return backward(xs, w, dy, padding, need_dx, need_dw, need_dbias, chunk_rows);
}

Tensor conv2d_forward_up2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, int64_t chunk_rows) {
  return forward({x}, w, bias, padding, chunk_rows, nullptr, Read::Up2);
}

Conv2dGrads conv2d_backward_up2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                bool need_dw, bool need_dbias, int64_t chunk_rows) {
  return single(backward({x}, w, dy, padding, need_dx, need_dw, need_dbias, chunk_rows, Read::Up2));
}

Tensor conv2d_forward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding,
                                 int64_t chunk_rows) {
  return forward({x}, w, bias, padding, chunk_rows, nullptr, Read::Unshuffle2);
}

Conv2dGrads conv2d_backward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                       bool need_dw, bool need_dbias, int64_t chunk_rows) {
  return single(backward({x}, w, dy, padding, need_dx, need_dw, need_dbias, chunk_rows, Read::Unshuffle2));
}

}  // namespace dd::kernels::cpu
