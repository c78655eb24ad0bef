// DDPM's per-sample steps as elementwise kernels (b = i / inner picks the
// sample's coefficient), and the same steps with the Gaussian noise drawn in the
// kernel from the Philox stream. The expressions are the CPU backend's, written
// the same way; the host compiler and nvcc may each fuse a multiply-add
// differently, so the backends agree to a few float32 ulps, not bitwise.
#include "engine/philox.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/diffusion.h"

namespace dd::kernels::cuda {

namespace {
struct StepCoefs {
  const float *ra, *be, *so, *sg;  // sqrt_recip_alpha, beta, sqrt_one_minus_ac, sigma
};

StepCoefs step_coefs(const PSampleCoefs& c) {
  return {c.sqrt_recip_alpha.data(), c.beta.data(), c.sqrt_one_minus_ac.data(), c.sigma.data()};
}

// The seed's order: betas_t * eps, then / sqrt_one_minus, x - that, then * sqrt_recip_alpha.
__device__ inline float step_mean(const StepCoefs& c, int64_t b, float x, float e) {
  return c.ra[b] * (x - c.be[b] * e / c.so[b]);
}

__global__ void q_sample_kernel(const float* x0, const float* noise, const float* a, const float* bb, float* out,
                                int64_t n, int64_t inner) {
  DD_GRID_STRIDE(i, n) {
    const int64_t b = i / inner;
    out[i] = a[b] * x0[i] + bb[b] * noise[i];
  }
}

__global__ void p_sample_step_kernel(const float* x, const float* eps, const float* noise, StepCoefs c, float* out,
                                     int64_t n, int64_t inner) {
  DD_GRID_STRIDE(i, n) {
    const int64_t b = i / inner;
    const float mean = step_mean(c, b, x[i], eps[i]);
    out[i] = noise ? mean + c.sg[b] * noise[i] : mean;
  }
}

__global__ void predict_x0_kernel(const float* x, const float* eps, const float* ra, const float* rm, float* out,
                                  int64_t n, int64_t inner, bool clamp) {
  DD_GRID_STRIDE(i, n) {
    const int64_t b = i / inner;
    const float v = ra[b] * x[i] - rm[b] * eps[i];
    // NaN passes through the clamp (as torch.clamp and the CPU).
    out[i] = clamp ? (v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v)) : v;
  }
}

// One thread per Philox block: elements 4k .. 4k+3 take lanes 0..3 of block
// offset + k, exactly as randn's kernel. Tensors are whole allocations (no
// views), so 4k floats from the base are 16-byte aligned for float4 access.
__global__ void q_sample_philox_kernel(const float* x0, const float* a, const float* bb, float* x_t, float* noise,
                                       int64_t n, int64_t inner, uint64_t seed, PhiloxOffset offset_at) {
  const int64_t blocks = (n + 3) / 4;
  const uint64_t offset = offset_at.get();
  DD_GRID_STRIDE(k, blocks) {
    float z[4];
    philox_normal4(seed, offset + static_cast<uint64_t>(k), z);
    const int64_t i0 = 4 * k;
    if (i0 + 3 < n) {
      const float4 x = reinterpret_cast<const float4*>(x0)[k];
      const float xs[4] = {x.x, x.y, x.z, x.w};
      float r[4];
      for (int l = 0; l < 4; ++l) {
        const int64_t b = (i0 + l) / inner;
        r[l] = a[b] * xs[l] + bb[b] * z[l];
      }
      reinterpret_cast<float4*>(x_t)[k] = make_float4(r[0], r[1], r[2], r[3]);
      reinterpret_cast<float4*>(noise)[k] = make_float4(z[0], z[1], z[2], z[3]);
    } else {
      for (int l = 0; i0 + l < n; ++l) {
        const int64_t i = i0 + l, b = i / inner;
        x_t[i] = a[b] * x0[i] + bb[b] * z[l];
        noise[i] = z[l];
      }
    }
  }
}

__global__ void p_sample_step_philox_kernel(const float* x, const float* eps, StepCoefs c, float* out, int64_t n,
                                            int64_t inner, uint64_t seed, PhiloxOffset offset_at) {
  const int64_t blocks = (n + 3) / 4;
  const uint64_t offset = offset_at.get();
  DD_GRID_STRIDE(k, blocks) {
    const int64_t i0 = 4 * k;
    const int lanes = i0 + 3 < n ? 4 : static_cast<int>(n - i0);
    // Philox only where some element of the block is noised (sigma == 0 at t == 0).
    bool noised = false;
    for (int l = 0; l < lanes; ++l) noised = noised || c.sg[(i0 + l) / inner] != 0.0f;
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (noised) philox_normal4(seed, offset + static_cast<uint64_t>(k), z);
    for (int l = 0; l < lanes; ++l) {
      const int64_t i = i0 + l, b = i / inner;
      const float mean = step_mean(c, b, x[i], eps[i]);
      out[i] = c.sg[b] == 0.0f ? mean : mean + c.sg[b] * z[l];
    }
  }
}

int64_t inner_of(const Tensor& x) { return x.numel() / x.dim(0); }
}  // namespace

Tensor q_sample(const Tensor& x0, const Tensor& noise, const Tensor& coef_a, const Tensor& coef_b) {
  Tensor out = Tensor::empty(x0.shape(), x0.device());
  const int64_t n = x0.numel();
  q_sample_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x0.data(), noise.data(), coef_a.data(), coef_b.data(),
                                                          out.data(), n, inner_of(x0));
  DD_CUDA_LAUNCH_CHECK("q_sample_kernel");
  return out;
}

Tensor p_sample_step(const Tensor& x_t, const Tensor& eps, const Tensor& noise, const PSampleCoefs& c) {
  Tensor out = Tensor::empty(x_t.shape(), x_t.device());
  const int64_t n = x_t.numel();
  p_sample_step_kernel<<<grid_for(n), kThreads, 0, stream()>>>(
      x_t.data(), eps.data(), noise.defined() ? noise.data() : nullptr, step_coefs(c), out.data(), n, inner_of(x_t));
  DD_CUDA_LAUNCH_CHECK("p_sample_step_kernel");
  return out;
}

Tensor predict_x0(const Tensor& x_t, const Tensor& eps, const Tensor& sqrt_recip_ac, const Tensor& sqrt_recipm1_ac,
                  bool clamp) {
  Tensor out = Tensor::empty(x_t.shape(), x_t.device());
  const int64_t n = x_t.numel();
  predict_x0_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x_t.data(), eps.data(), sqrt_recip_ac.data(),
                                                            sqrt_recipm1_ac.data(), out.data(), n, inner_of(x_t),
                                                            clamp);
  DD_CUDA_LAUNCH_CHECK("predict_x0_kernel");
  return out;
}

QSampleOut q_sample_philox(const Tensor& x0, const Tensor& coef_a, const Tensor& coef_b, uint64_t seed,
                           PhiloxOffset offset) {
  QSampleOut out;
  out.x_t = Tensor::empty(x0.shape(), x0.device());
  out.noise = Tensor::empty(x0.shape(), x0.device());
  const int64_t n = x0.numel();
  q_sample_philox_kernel<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(
      x0.data(), coef_a.data(), coef_b.data(), out.x_t.data(), out.noise.data(), n, inner_of(x0), seed, offset);
  DD_CUDA_LAUNCH_CHECK("q_sample_philox_kernel");
  return out;
}

Tensor p_sample_step_philox(const Tensor& x_t, const Tensor& eps, const PSampleCoefs& c, uint64_t seed,
                            PhiloxOffset offset) {
  Tensor out = Tensor::empty(x_t.shape(), x_t.device());
  const int64_t n = x_t.numel();
  p_sample_step_philox_kernel<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(
      x_t.data(), eps.data(), step_coefs(c), out.data(), n, inner_of(x_t), seed, offset);
  DD_CUDA_LAUNCH_CHECK("p_sample_step_philox_kernel");
  return out;
}

}  // namespace dd::kernels::cuda
