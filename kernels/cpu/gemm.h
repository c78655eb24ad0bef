#pragma once
// Shared pieces of the GEMM-family CPU kernels (linear, conv2d): Eigen views
// of raw row-major buffers and a deterministic column sum (bias gradients).
#include <cstdint>
#include <vector>

// GCC 12 flags Eigen 3.4's AVX-512 packet code with false -Wmaybe-uninitialized
// warnings (in the intrinsics headers it pulls in); silence them there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

namespace dd::kernels::cpu {

// Eigen never threads a product here: the kernels parallelise over fixed blocks with OpenMP, one
// single-threaded GEMM per block, so the bits do not depend on the thread count. A product left to
// Eigen's own threading (any outside an active parallel region) busy-waits between its threads
// and followed the thread count in its blocking: sampling 4 images ran slower on 2 threads than
// on 1 (194 against 138 ms a step, bench/RESULTS.md's CPU sections, 2026-11-28). Set once, before
// main, in every program that links a kernel using this header.
inline const bool kEigenSingleThreaded = [] {
  Eigen::setNbThreads(1);
  return true;
}();

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<RowMat>;
using ConstMatMap = Eigen::Map<const RowMat>;
using VecMap = Eigen::Map<Eigen::RowVectorXf>;
using ConstVecMap = Eigen::Map<const Eigen::RowVectorXf>;
// A column slice of row-major rows (e.g. one head's q, k or v inside NHWC qkv rows).
using ConstSlice = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using Slice = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

// out[c] = sum_r a[r, c] (a row-major [rows, cols]), with out[c] = 0 when rows = 0.
// The rows are cut into fixed blocks whose partial sums (double) are combined in
// block order, so the result does not depend on the thread count or schedule.
// (group_norm_act_backward_dsum takes the same sums of the rows it writes: keep the two in step.)
constexpr int64_t kColumnSumBlock = 256;

// out[c] = the block partials [blocks, cols] added in block order, rounded once.
inline void fold_column_sums(const double* partial, int64_t blocks, int64_t cols, float* out) {
  for (int64_t c = 0; c < cols; ++c) {
    double s = 0.0;
    for (int64_t b = 0; b < blocks; ++b) s += partial[b * cols + c];
    out[c] = static_cast<float>(s);
  }
}

inline void column_sums(const float* a, int64_t rows, int64_t cols, float* out) {
  const int64_t blocks = (rows + kColumnSumBlock - 1) / kColumnSumBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks * cols), 0.0);
#pragma omp parallel for schedule(static) if (blocks > 1 && rows * cols > (1 << 15))
  for (int64_t b = 0; b < blocks; ++b) {
    double* p = partial.data() + b * cols;
    const int64_t hi = (b + 1) * kColumnSumBlock < rows ? (b + 1) * kColumnSumBlock : rows;
    for (int64_t r = b * kColumnSumBlock; r < hi; ++r) {
      const float* row = a + r * cols;
      for (int64_t c = 0; c < cols; ++c) p[c] += row[c];
    }
  }
  fold_column_sums(partial.data(), blocks, cols, out);
}

}  // namespace dd::kernels::cpu
