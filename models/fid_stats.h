#pragma once
// FID statistics: the mean and covariance of Inception pool3 features, accumulated batch by batch,
// the Fréchet distance between two such Gaussians, and the files they are kept in (ours:
// .safetensors, F64; pytorch-fid's: .npz with mu and sigma).
//
// Everything is float64. FeatureStats merges each batch by Chan et al.'s pairwise update (the
// batch's mean and scatter matrix, the scatter an Eigen SYRK of the centred batch, then the
// combination with the running ones), so 50,000 x 2048 features stream through without being kept
// and without the cancellation of a sum of squares.
//
// frechet_distance(a, b) = ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr sqrt(S_a S_b), where
// Tr sqrt(S_a S_b) is the sum of the square roots of the eigenvalues of the symmetric PSD matrix
// sqrt(S_a) S_b sqrt(S_a), which has the eigenvalues of S_a S_b (AB and BA do, with A = sqrt(S_a) and
// B = sqrt(S_a) S_b), sqrt(S_a) from a symmetric eigendecomposition. Both decompositions are
// symmetric ones (Eigen::SelfAdjointEigenSolver): no complex arithmetic and no failure on the
// singular covariances of fewer samples than dimensions, where scipy's sqrtm, which pytorch-fid
// uses, needs its eps fallback. Eigenvalues that rounding leaves slightly negative are taken as 0.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dd::fid {

// Streaming mean and covariance of feature rows, float64 throughout.
class FeatureStats {
 public:
  // chunk_rows: rows converted to float64 and folded in per step (0: as many as make about 32 MB).
  explicit FeatureStats(int64_t dim, int64_t chunk_rows = 0);
  // n rows of dim floats, row-major (a batch of Inception pool3 features). Any non-finite value
  // throws, naming its row and column, before the statistics change.
  void add(const float* rows, int64_t n);
  // The same for float64 rows.
  void add(const double* rows, int64_t n);
  // Adds the rows other has seen (same dim), as if they had been added here.
  void merge(const FeatureStats& other);

  int64_t count() const { return count_; }
  int64_t dim() const { return dim_; }
  // [dim]; needs count >= 1.
  std::vector<double> mean() const;
  // [dim*dim] row-major, unbiased (divided by count - 1), as np.cov(x, rowvar=False); needs count >= 2.
  std::vector<double> covariance() const;

 private:
  template <typename T>
  void add_rows(const T* rows, int64_t n);

  int64_t dim_;
  int64_t chunk_rows_;
  int64_t count_ = 0;
  std::vector<double> mean_;     // [dim]
  std::vector<double> scatter_;  // [dim*dim] column-major, lower triangle valid: sum (x - mean)(x - mean)^T
};

struct FidStats {
  std::vector<double> mu, sigma;  // [dim], [dim*dim] row-major
  int64_t dim = 0;
  int64_t count = 0;  // rows behind the statistics; 0 when unknown (an .npz from pytorch-fid)
  std::map<std::string, std::string> metadata;  // free-form (dataset, model, ...); kept in .safetensors
};

// mean() and covariance() of s (count >= 2), with its dim and count.
FidStats finalize(const FeatureStats& s);

// The Fréchet distance between two Gaussians. Throws when the dims differ, a size does not match
// dim, a value is not finite, a sigma is not symmetric (|S_ij - S_ji| above 1e-6 of its largest
// element) or clearly not positive semidefinite. Rounding can make the exact formula a hair below 0;
// the result is clamped to >= 0 (the distance is a squared 2-Wasserstein distance).
double frechet_distance(const FidStats& a, const FidStats& b);

// By extension:
// .safetensors: F64 "mu" [dim] and "sigma" [dim, dim]; metadata "count" plus s.metadata (which may
//   not use the key "count").
// .npz: what np.savez writes, mu and sigma as '<f8' (pytorch-fid's --save-stats format; no count).
void save_stats(const std::string& path, const FidStats& s);
// .safetensors (ours: F64 or F32) or .npz (pytorch-fid's: np.savez or np.savez_compressed, keys mu and
// sigma, '<f8' or '<f4', C order; other keys ignored). Checks the shapes ([d] and [d, d], d >= 1)
// and that every value is finite; errors name the file and what is wrong.
FidStats load_stats(const std::string& path);

}  // namespace dd::fid
