// Linear layer on cuBLAS. Our tensors are row-major; cuBLAS is column-major, so
// every product is written for the transposes: a row-major [R, C] buffer is a
// column-major [C, R] matrix with leading dimension C.
#include "engine/context.h"
#include "engine/dtype.h"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/linear.h"

namespace dd::kernels::cuda {

namespace {
// Rows per partial sum of dbias: the CPU's column_sums uses the same chunking and
// the same double accumulation order, so the two backends agree bit for bit.
constexpr int64_t kBiasRowChunk = 256;

__global__ void broadcast_rows_kernel(const float* bias, float* y, int64_t m, int64_t n) {
  DD_GRID_STRIDE(i, m * n) y[i] = bias[i % n];
}

// partial[chunk * n + c] = sum of dy[r, c] over the rows r of the chunk, in row order.
__global__ void column_partials_kernel(const float* dy, int64_t m, int64_t n, int64_t chunks, double* partial) {
  DD_GRID_STRIDE(i, chunks * n) {
    const int64_t chunk = i / n, c = i % n;
    const int64_t lo = chunk * kBiasRowChunk;
    const int64_t hi = lo + kBiasRowChunk < m ? lo + kBiasRowChunk : m;
    double s = 0.0;
    for (int64_t r = lo; r < hi; ++r) s += static_cast<double>(dy[r * n + c]);
    partial[i] = s;
  }
}

__global__ void fold_columns_kernel(const double* partial, int64_t n, int64_t chunks, float* out) {
  DD_GRID_STRIDE(c, n) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * n + c];
    out[c] = static_cast<float>(s);
  }
}

__global__ void round_tf32_kernel(const float* src, float* dst, int64_t n) {
  DD_GRID_STRIDE(i, n) dst[i] = dtype_conv::round_tf32(src[i]);
}

// Under TF32 cuBLAS runs TF32 tensor-op math, and how it turns fp32 operands into tf32
// (rounding, or dropping the low 13 bits as the tensor cores do with raw fp32 words) is not
// documented. Rounding them here first (nearest, ties away: cvt.rna, engine/dtype.h's round_tf32)
// makes its conversion exact either way, so the product is the one the CPU's policy models
// (kernels/cpu/operand_rounding.h). The first GPU run (H200, 2026-11-27) found whole BF16/TF32
// steps as far from the CPU's step under the same policy as that is from fp32, with the
// convolutions matching the CPU's rounding to 7e-6: these GEMMs are the suspects.
Tensor tf32_operand(const Tensor& t) {
  if (current_context().precision() != Precision::TF32 || t.numel() == 0) return t;
  Tensor out = Tensor::empty(t.shape(), t.device());
  round_tf32_kernel<<<grid_for(t.numel()), kThreads, 0, stream()>>>(t.data(), out.data(), t.numel());
  DD_CUDA_LAUNCH_CHECK("round_tf32_kernel");
  return out;
}

// What cuBLAS multiplies under the context's policy: the fp32 tensor (FP32), its tf32 rounding
// (TF32), or its bf16 copy (BF16: cublasGemmEx with bf16 A and B and fp32 accumulation into fp32 C,
// as autocast runs nn.Linear): the operands the CPU's policy rounds the same way.
Tensor gemm_operand(const Tensor& t) {
  if (current_context().precision() != Precision::BF16) return tf32_operand(t);
  return t.numel() == 0 ? t : t.to(DType::BF16);
}

// C = op(A) op(B) + beta C, column-major, C fp32 [m, n] (ld ldc); A and B both fp32 or both bf16.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const Tensor& a, int lda, const Tensor& b,
          int ldb, float beta, float* c, int ldc) {
  const float one = 1.0f;
  if (a.dtype() == DType::BF16) {
    DD_CHECK(b.dtype() == DType::BF16, "linear (cuda): a bf16 and a ", dtype_name(b.dtype()), " operand");
    DD_CUBLAS_CHECK(cublasGemmEx(cublas_handle(), ta, tb, m, n, k, &one, a.raw_data(), CUDA_R_16BF, lda, b.raw_data(),
                                 CUDA_R_16BF, ldb, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    DD_CUBLAS_CHECK(cublasSgemm(cublas_handle(), ta, tb, m, n, k, &one, a.data(), lda, b.data(), ldb, &beta, c, ldc));
  }
}

// cuBLAS takes int dimensions.
int as_int(int64_t v, const char* what) {
  DD_CHECK(v <= 0x7fffffff, "linear (cuda): ", what, " = ", v, " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}
}  // namespace

Tensor linear_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias) {
  const Tensor x = gemm_operand(x_in), w = gemm_operand(w_in);
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  Tensor y = Tensor::empty({m, n}, x.device());
  if (m == 0 || n == 0) return y;
  // Like the CPU: start from the broadcast bias (or zeros) and let the GEMM accumulate onto it.
  if (bias.defined()) {
    broadcast_rows_kernel<<<grid_for(m * n), kThreads, 0, stream()>>>(bias.data(), y.data(), m, n);
    DD_CUDA_LAUNCH_CHECK("broadcast_rows_kernel");
  } else {
    y.zero_();
  }
  if (k == 0) return y;
  // y^T [n, m] = w [n, k] * x^T [k, m]; w's buffer is w^T column-major (ld k), x's is x^T (ld k).
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, as_int(n, "N"), as_int(m, "M"), as_int(k, "K"), w, as_int(k, "K"), x, as_int(k, "K"),
       1.0f, y.data(), as_int(n, "N"));
  return y;
}

LinearGrads linear_backward(const Tensor& x_in, const Tensor& w_in, const Tensor& dy_in, bool need_dx, bool need_dw,
                            bool need_dbias) {
  const Tensor x = need_dw ? gemm_operand(x_in) : x_in, w = need_dx ? gemm_operand(w_in) : w_in;
  const Tensor dy = need_dx || need_dw ? gemm_operand(dy_in) : dy_in;
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  LinearGrads g;
  if (need_dx) {
    g.dx = Tensor::empty({m, k}, x.device());
    if (n == 0) {
      g.dx.zero_();
    } else if (m > 0 && k > 0) {
      // dx^T [k, m] = w^T [k, n] * dy^T [n, m]: both buffers as they are.
      gemm(CUBLAS_OP_N, CUBLAS_OP_N, as_int(k, "K"), as_int(m, "M"), as_int(n, "N"), w, as_int(k, "K"), dy,
           as_int(n, "N"), 0.0f, g.dx.data(), as_int(k, "K"));
    }
  }
  if (need_dw) {
    g.dw = Tensor::empty({n, k}, x.device());
    if (m == 0) {
      g.dw.zero_();
    } else if (n > 0 && k > 0) {
      // dw^T [k, n] = x^T [k, m] * dy [m, n]; dy's buffer is dy^T (ld n), hence OP_T.
      gemm(CUBLAS_OP_N, CUBLAS_OP_T, as_int(k, "K"), as_int(n, "N"), as_int(m, "M"), x, as_int(k, "K"), dy,
           as_int(n, "N"), 0.0f, g.dw.data(), as_int(k, "K"));
    }
  }
  if (need_dbias) {
    g.dbias = Tensor::empty({n}, x.device());
    if (n > 0) {
      const int64_t chunks = (m + kBiasRowChunk - 1) / kBiasRowChunk;
      if (chunks == 0) {
        g.dbias.zero_();
      } else {
        // Scratch of chunks * n doubles, held as twice as many floats.
        Tensor scratch = Tensor::empty({2 * chunks * n}, x.device());
        double* partial = reinterpret_cast<double*>(scratch.data());
        column_partials_kernel<<<grid_for(chunks * n), kThreads, 0, stream()>>>(dy_in.data(), m, n, chunks, partial);  // unrounded, as on the CPU
        DD_CUDA_LAUNCH_CHECK("column_partials_kernel");
        fold_columns_kernel<<<grid_for(n), kThreads, 0, stream()>>>(partial, n, chunks, g.dbias.data());
        DD_CUDA_LAUNCH_CHECK("fold_columns_kernel");
      }
    }
  }
  return g;
}

}  // namespace dd::kernels::cuda
