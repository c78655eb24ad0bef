#include "kernels/broadcast.h"
#include "kernels/cuda/channel_sums.cuh"

namespace dd::kernels::cuda {

namespace {
struct Dims {
  int64_t B, P, C;  // batch, positions per batch item, channels
};
Dims dims_of(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(-1);
  return {B, B * C > 0 ? x.numel() / (B * C) : 0, C};
}

enum class Map { Add, Mul, ScaleShift };

template <Map op>
__global__ void map_bc_kernel(const float* x, const float* v, const float* w, int64_t n, int64_t P, int64_t C,
                              float* y) {
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, P, C, n);
    const int64_t j = e.b * C + e.c;
    if (op == Map::Add) y[i] = x[i] + v[j];
    if (op == Map::Mul) y[i] = x[i] * v[j];
    // (scale + 1) rounded to float first, as the CPU and PyTorch do.
    if (op == Map::ScaleShift) y[i] = x[i] * (v[j] + 1.0f) + w[j];
  }
}

template <Map op>
Tensor map_bc(const Tensor& x, const Tensor& v, const Tensor& w) {
  const Dims d = dims_of(x);
  Tensor y = Tensor::empty(x.shape(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return y;
  map_bc_kernel<op><<<grid_for(n), kThreads, 0, stream()>>>(x.data(), v.data(), w.defined() ? w.data() : nullptr,
                                                             n, d.P, d.C, y.data());
  DD_CUDA_LAUNCH_CHECK("map_bc_kernel");
  return y;
}

struct SumDyTerm {
  const float* dy;
  __device__ void operator()(int64_t, int64_t, int64_t i, double* acc) const { acc[0] += dy[i]; }
};

// dx = dy * v[b, c]; dv += dy * x. One pass over x and dy.
struct MulBcTerm {
  const float* x;
  const float* v;
  const float* dy;
  float* dx;
  int64_t C;
  __device__ void operator()(int64_t b, int64_t c, int64_t i, double* acc) const {
    const float g = dy[i];
    dx[i] = g * v[b * C + c];
    acc[0] += static_cast<double>(g) * x[i];
  }
};

// dx = dy * (scale + 1); dscale += dy * x; dshift += dy.
struct ScaleShiftTerm {
  const float* x;
  const float* scale;
  const float* dy;
  float* dx;
  int64_t C;
  __device__ void operator()(int64_t b, int64_t c, int64_t i, double* acc) const {
    const float g = dy[i];
    dx[i] = g * (scale[b * C + c] + 1.0f);
    acc[0] += static_cast<double>(g) * x[i];
    acc[1] += g;
  }
};

// K sums over positions, rounded to float into outs (each [B, C]).
template <int K, typename Term>
void reduce_to(const Term& term, const Dims& d, Tensor* const (&outs)[K]) {
  const int64_t bc = d.B * d.C;
  if (bc == 0) return;
  DoubleScratch sums(K * bc);
  channel_sums<K>(term, d.B, d.P, d.C, sums.get());
  for (int k = 0; k < K; ++k) double_to_float(sums.get() + k * bc, outs[k]->data(), bc);
}
}  // namespace

Tensor add_bc(const Tensor& x, const Tensor& v) { return map_bc<Map::Add>(x, v, Tensor()); }
Tensor mul_bc(const Tensor& x, const Tensor& v) { return map_bc<Map::Mul>(x, v, Tensor()); }
Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  return map_bc<Map::ScaleShift>(x, scale, shift);
}

Tensor add_bc_backward(const Tensor& dy) {
  const Dims d = dims_of(dy);
  Tensor dv = Tensor::empty({d.B, d.C}, dy.device());
  Tensor* const outs[1] = {&dv};
  reduce_to<1>(SumDyTerm{dy.data()}, d, outs);
  return dv;
}

MulBcGrads mul_bc_backward(const Tensor& x, const Tensor& v, const Tensor& dy) {
  const Dims d = dims_of(x);
  MulBcGrads g{Tensor::empty(x.shape(), x.device()), Tensor::empty({d.B, d.C}, x.device())};
  Tensor* const outs[1] = {&g.dv};
  reduce_to<1>(MulBcTerm{x.data(), v.data(), dy.data(), g.dx.data(), d.C}, d, outs);
  return g;
}

ScaleShiftGrads scale_shift_backward(const Tensor& x, const Tensor& scale, const Tensor& dy) {
  const Dims d = dims_of(x);
  ScaleShiftGrads g{Tensor::empty(x.shape(), x.device()), Tensor::empty({d.B, d.C}, x.device()),
                    Tensor::empty({d.B, d.C}, x.device())};
  Tensor* const outs[2] = {&g.dscale, &g.dshift};
  reduce_to<2>(ScaleShiftTerm{x.data(), scale.data(), dy.data(), g.dx.data(), d.C}, d, outs);
  return g;
}

}  // namespace dd::kernels::cuda
