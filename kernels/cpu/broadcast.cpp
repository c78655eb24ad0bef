#include "kernels/broadcast.h"

#include <algorithm>
#include <vector>

namespace dd::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
// Positions per reduction chunk are chosen from C alone (never from the
// thread count), so the partial sums and their order are fixed by the shape.
constexpr int64_t kChunkElems = 1 << 13;

struct Dims {
  int64_t B, P, C;  // batch, positions per batch item, channels
};
Dims dims_of(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(-1);
  return {B, B * C > 0 ? x.numel() / (B * C) : 0, C};
}

// f(x_row, v_rows..., y_row, C) over every (b, position) row, each row one thread's.
template <typename F>
Tensor map_rows(const Tensor& x, const Tensor& v, const Tensor& w, F f) {
  const Dims d = dims_of(x);
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  const float* pv = v.data();
  const float* pw = w.defined() ? w.data() : nullptr;
  float* py = y.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < d.B * d.P; ++r) {
    const int64_t b = r / d.P;
    f(px + r * d.C, pv + b * d.C, pw ? pw + b * d.C : nullptr, py + r * d.C, d.C);
  }
  return y;
}

// Splits each batch item's positions into fixed chunks; body(b, p0, p1, acc)
// handles positions [p0, p1) of item b and adds its K sums per channel into
// acc[k*C + c] (zeroed doubles). The chunk partials are then added in chunk
// order into outs[k][b*C + c], so every run gives the same bits.
template <int K, typename Body>
void reduce_over_positions(const Dims& d, float* const (&outs)[K], Body body) {
  const int64_t len = std::max<int64_t>(1, kChunkElems / std::max<int64_t>(d.C, 1));
  const int64_t chunks = (d.P + len - 1) / len;
  const int64_t tasks = d.B * chunks;
  std::vector<double> part(static_cast<std::size_t>(tasks * K * d.C), 0.0);
#pragma omp parallel for schedule(static) if (d.B * d.P * d.C > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / chunks, p0 = (t % chunks) * len;
    body(b, p0, std::min(d.P, p0 + len), part.data() + t * K * d.C);
  }
#pragma omp parallel for schedule(static) if (tasks * K * d.C > kParallelMin)
  for (int64_t b = 0; b < d.B; ++b)
    for (int k = 0; k < K; ++k)
      for (int64_t c = 0; c < d.C; ++c) {
        double s = 0.0;
        for (int64_t j = 0; j < chunks; ++j) s += part[static_cast<std::size_t>(((b * chunks + j) * K + k) * d.C + c)];
        outs[k][b * d.C + c] = static_cast<float>(s);
      }
}
}  // namespace

Tensor add_bc(const Tensor& x, const Tensor& v) {
  return map_rows(x, v, Tensor(), [](const float* xr, const float* vr, const float*, float* yr, int64_t C) {
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] + vr[c];
  });
}

Tensor mul_bc(const Tensor& x, const Tensor& v) {
  return map_rows(x, v, Tensor(), [](const float* xr, const float* vr, const float*, float* yr, int64_t C) {
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * vr[c];
  });
}

Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  return map_rows(x, scale, shift, [](const float* xr, const float* sr, const float* hr, float* yr, int64_t C) {
    // (scale + 1) rounded to float first, then the product, then the shift:
    // PyTorch's order for x * (scale + 1) + shift.
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * (sr[c] + 1.0f) + hr[c];
  });
}

Tensor add_bc_backward(const Tensor& dy) {
  const Dims d = dims_of(dy);
  Tensor dv = Tensor::empty({d.B, d.C});
  const float* pg = dy.data();
  float* const outs[1] = {dv.data()};
  reduce_over_positions<1>(d, outs, [&](int64_t b, int64_t p0, int64_t p1, double* acc) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* g = pg + (b * d.P + p) * d.C;
#pragma omp simd
      for (int64_t c = 0; c < d.C; ++c) acc[c] += g[c];
    }
  });
  return dv;
}

MulBcGrads mul_bc_backward(const Tensor& x, const Tensor& v, const Tensor& dy) {
  const Dims d = dims_of(x);
  MulBcGrads g{Tensor::empty(x.shape()), Tensor::empty({d.B, d.C})};
  const float* px = x.data();
  const float* pv = v.data();
  const float* pg = dy.data();
  float* pdx = g.dx.data();
  float* const outs[1] = {g.dv.data()};
  // dx and dv in one pass over x and dy.
  reduce_over_positions<1>(d, outs, [&](int64_t b, int64_t p0, int64_t p1, double* acc) {
    const float* vr = pv + b * d.C;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t off = (b * d.P + p) * d.C;
      const float* xr = px + off;
      const float* gr = pg + off;
      float* dxr = pdx + off;
#pragma omp simd
      for (int64_t c = 0; c < d.C; ++c) {
        dxr[c] = gr[c] * vr[c];
        acc[c] += static_cast<double>(gr[c]) * xr[c];
      }
    }
  });
  return g;
}

ScaleShiftGrads scale_shift_backward(const Tensor& x, const Tensor& scale, const Tensor& dy) {
  const Dims d = dims_of(x);
  ScaleShiftGrads g{Tensor::empty(x.shape()), Tensor::empty({d.B, d.C}), Tensor::empty({d.B, d.C})};
  const float* px = x.data();
  const float* ps = scale.data();
  const float* pg = dy.data();
  float* pdx = g.dx.data();
  float* const outs[2] = {g.dscale.data(), g.dshift.data()};
  // dx, dscale and dshift in one pass over x and dy.
  reduce_over_positions<2>(d, outs, [&](int64_t b, int64_t p0, int64_t p1, double* acc) {
    const float* sr = ps + b * d.C;
    double* acc_scale = acc;
    double* acc_shift = acc + d.C;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t off = (b * d.P + p) * d.C;
      const float* xr = px + off;
      const float* gr = pg + off;
      float* dxr = pdx + off;
#pragma omp simd
      for (int64_t c = 0; c < d.C; ++c) {
        dxr[c] = gr[c] * (sr[c] + 1.0f);
        acc_scale[c] += static_cast<double>(gr[c]) * xr[c];
        acc_shift[c] += gr[c];
      }
    }
  });
  return g;
}

}  // namespace dd::kernels::cpu
