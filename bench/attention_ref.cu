#include "bench/attention_ref.h"

#include <cmath>
#include <vector>

#include "engine/cuda_check.h"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::bench {

namespace {
constexpr int kRowsPerBlock = 8;  // one warp per row

// P = softmax of each row of S (length n), in place.
__global__ void softmax_rows(float* s, int64_t rows, int n) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together; no block-level sync below
  float* r = s + row * n;
  float m = -INFINITY;
  for (int j = lane; j < n; j += 32) m = fmaxf(m, r[j]);
  for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  float sum = 0;
  for (int j = lane; j < n; j += 32) sum += __expf(r[j] - m);
  for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float inv = 1.0f / sum;
  for (int j = lane; j < n; j += 32) r[j] = __expf(r[j] - m) * inv;
}

// dS = P ∘ (dP - rowsum(P ∘ dP)), in place over dP.
__global__ void softmax_backward_rows(const float* p, float* dp, int64_t rows, int n) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* pr = p + row * n;
  float* dr = dp + row * n;
  float d = 0;
  for (int j = lane; j < n; j += 32) d += pr[j] * dr[j];
  for (int o = 16; o; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
  for (int j = lane; j < n; j += 32) dr[j] = pr[j] * (dr[j] - d);
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }
}  // namespace

struct RefAttention::Impl {
  int64_t B, N, heads, dh, H, BH;
  float scale;
  Tensor qkv, dy, out, dqkv, P, dP;
  // Device arrays of per-(b, head) pointers, one array per operand role.
  std::vector<Tensor> holders;
  const float **q, **k, **v, **dO, **Pp, **dPp;
  float **o, **S, **dS, **dq, **dk, **dv;

  float** ptrs(std::vector<const float*> host) {
    // Pointers are 8 bytes; a float tensor of twice the count holds them.
    Tensor t = Tensor::empty({static_cast<int64_t>(host.size()) * 2}, Device::CUDA);
    // On the engine's stream: the block may have been freed by a kernel still queued there, and a
    // cudaMemcpy on the legacy stream would not wait for it (the engine's stream is non-blocking).
    cuda_mem::copy_h2d(t.data(), host.data(), host.size() * sizeof(float*));
    holders.push_back(t);
    return reinterpret_cast<float**>(t.data());
  }
  template <typename F>
  float** make(F addr) {
    std::vector<const float*> h;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t hd = 0; hd < heads; ++hd) h.push_back(addr(b, hd));
    return ptrs(h);
  }
};

RefAttention::RefAttention(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.B = qkv.dim(0);
  m.N = qkv.numel() / (m.B * qkv.dim(-1));
  m.heads = heads;
  m.dh = dim_head;
  m.H = heads * dim_head;
  m.BH = m.B * heads;
  m.scale = 1.0f / std::sqrt(static_cast<float>(dim_head));
  m.qkv = qkv;
  m.dy = dy;
  m.out = Tensor::empty({m.B, m.N, m.H}, Device::CUDA);
  m.dqkv = Tensor::empty(qkv.shape(), Device::CUDA);
  m.P = Tensor::empty({m.BH, m.N, m.N}, Device::CUDA);
  m.dP = Tensor::empty({m.BH, m.N, m.N}, Device::CUDA);
  const int64_t N = m.N, H = m.H, dh = m.dh, NN = m.N * m.N, hh = heads;
  const float* x = qkv.data();
  const float* g = dy.data();
  float* o = m.out.data();
  float* d = m.dqkv.data();
  float* p = m.P.data();
  float* dp = m.dP.data();
  m.q = const_cast<const float**>(m.make([&](int64_t b, int64_t h) { return x + b * N * 3 * H + h * dh; }));
  m.k = const_cast<const float**>(m.make([&](int64_t b, int64_t h) { return x + b * N * 3 * H + H + h * dh; }));
  m.v = const_cast<const float**>(m.make([&](int64_t b, int64_t h) { return x + b * N * 3 * H + 2 * H + h * dh; }));
  m.dO = const_cast<const float**>(m.make([&](int64_t b, int64_t h) { return g + b * N * H + h * dh; }));
  m.o = m.make([&](int64_t b, int64_t h) { return o + b * N * H + h * dh; });
  m.S = m.make([&](int64_t b, int64_t h) { return p + (b * hh + h) * NN; });
  m.Pp = const_cast<const float**>(m.S);
  m.dS = m.make([&](int64_t b, int64_t h) { return dp + (b * hh + h) * NN; });
  m.dPp = const_cast<const float**>(m.dS);
  m.dq = m.make([&](int64_t b, int64_t h) { return d + b * N * 3 * H + h * dh; });
  m.dk = m.make([&](int64_t b, int64_t h) { return d + b * N * 3 * H + H + h * dh; });
  m.dv = m.make([&](int64_t b, int64_t h) { return d + b * N * 3 * H + 2 * H + h * dh; });
}

RefAttention::~RefAttention() = default;
const Tensor& RefAttention::out() const { return impl_->out; }
const Tensor& RefAttention::dqkv() const { return impl_->dqkv; }

// cuBLAS is column-major: a row-major [N, dh] slice with row stride ld is a column-major dh x N
// matrix with leading dimension ld, and a row-major N x N matrix is its own transpose.
void RefAttention::forward() {
  Impl& m = *impl_;
  cublasHandle_t h = kernels::cuda::cublas_handle();
  const int N = int(m.N), dh = int(m.dh), ld3 = int(3 * m.H), ldh = int(m.H), bh = int(m.BH);
  const float zero = 0.0f, one = 1.0f;
  // S[i][j] = scale q_i·k_j: column-major S^T = K^T Q.
  DD_CUBLAS_CHECK(cublasSgemmBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, N, N, dh, &m.scale, m.k, ld3, m.q, ld3, &zero, m.S,
                                     N, bh));
  softmax_rows<<<row_blocks(m.BH * m.N), kRowsPerBlock * 32, 0, kernels::cuda::stream()>>>(m.P.data(), m.BH * m.N, N);
  DD_CUDA_LAUNCH_CHECK("softmax_rows");
  // O^T = V^T P^T.
  DD_CUBLAS_CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, dh, N, N, &one, m.v, ld3, m.Pp, N, &zero, m.o, ldh,
                                     bh));
}

void RefAttention::backward() {
  Impl& m = *impl_;
  cublasHandle_t h = kernels::cuda::cublas_handle();
  const int N = int(m.N), dh = int(m.dh), ld3 = int(3 * m.H), ldh = int(m.H), bh = int(m.BH);
  const float zero = 0.0f, one = 1.0f;
  // dV^T = dO^T P.
  DD_CUBLAS_CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, dh, N, N, &one, m.dO, ldh, m.Pp, N, &zero, m.dv, ld3,
                                     bh));
  // dP[i][j] = dO_i·v_j.
  DD_CUBLAS_CHECK(cublasSgemmBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, N, N, dh, &one, m.v, ld3, m.dO, ldh, &zero, m.dS, N,
                                     bh));
  softmax_backward_rows<<<row_blocks(m.BH * m.N), kRowsPerBlock * 32, 0, kernels::cuda::stream()>>>(
      m.P.data(), m.dP.data(), m.BH * m.N, N);
  DD_CUDA_LAUNCH_CHECK("softmax_backward_rows");
  // dQ^T = scale K^T dS^T; dK^T = scale Q^T dS.
  DD_CUBLAS_CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, dh, N, N, &m.scale, m.k, ld3, m.dPp, N, &zero, m.dq,
                                     ld3, bh));
  DD_CUBLAS_CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, dh, N, N, &m.scale, m.q, ld3, m.dPp, N, &zero, m.dk,
                                     ld3, bh));
}

}  // namespace dd::bench
