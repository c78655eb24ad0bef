#include "models/fid_stats.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/npz.h"
#include "engine/safetensors.h"

namespace dd::fid {
namespace {

using MatX = Eigen::MatrixXd;
using VecX = Eigen::VectorXd;
using RowMajorMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows converted to float64 per step: ~32 MB of doubles whatever the width.
constexpr int64_t kChunkDoubles = int64_t{1} << 22;
// A covariance's largest dimension: dim * dim doubles must stay addressable (and sane).
constexpr int64_t kMaxDim = int64_t{1} << 20;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* const kUnknownExtension = ": unknown file type; FID statistics are .safetensors (ours) or .npz (pytorch-fid's)";

// The shape and value checks every FidStats passes before use or after loading.
void check_stats(const FidStats& s, const std::string& where) {
  DD_CHECK(s.dim >= 1 && s.dim <= kMaxDim, where, ": dim ", s.dim, " is out of range [1, ", kMaxDim, "]");
  DD_CHECK(static_cast<int64_t>(s.mu.size()) == s.dim, where, ": mu holds ", s.mu.size(), " values but dim is ", s.dim);
  DD_CHECK(static_cast<int64_t>(s.sigma.size()) == s.dim * s.dim, where, ": sigma holds ", s.sigma.size(),
           " values but dim ", s.dim, " needs ", s.dim * s.dim);
  DD_CHECK(s.count >= 0, where, ": count ", s.count, " is negative");
  for (std::size_t i = 0; i < s.mu.size(); ++i)
    DD_CHECK(std::isfinite(s.mu[i]), where, ": mu[", i, "] is ", s.mu[i]);
  for (std::size_t i = 0; i < s.sigma.size(); ++i)
    DD_CHECK(std::isfinite(s.sigma[i]), where, ": sigma[", i / s.dim, ", ", i % s.dim, "] is ", s.sigma[i]);
}

// sigma as a symmetric Eigen matrix; throws when it is not symmetric within 1e-6 of its largest element.
MatX symmetric_matrix(const FidStats& s, const std::string& where) {
  const Eigen::Map<const RowMajorMat> a(s.sigma.data(), s.dim, s.dim);
  const double scale = a.cwiseAbs().maxCoeff();
  double worst = 0;
  Eigen::Index wi = 0, wj = 0;
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < i; ++j) {
      const double d = std::abs(a(i, j) - a(j, i));
      if (d > worst) {
        worst = d;
        wi = i;
        wj = j;
      }
    }
  DD_CHECK(worst <= 1e-6 * scale, where, ": sigma is not symmetric: sigma[", wi, ", ", wj, "] = ", a(wi, wj),
           " but sigma[", wj, ", ", wi, "] = ", a(wj, wi), " (tolerance 1e-6 of its largest element, ", scale, ")");
  return 0.5 * (a + a.transpose());
}

// Eigenvalues below -tol * scale mean the matrix is not a covariance; rounding (float32 storage
// included: an elementwise error of 6e-8 moves an eigenvalue by at most dim * 6e-8 of the largest
// element) stays well inside dim * 1e-6. scale: the size of what was rounded, at least the largest
// |eigenvalue|; for a product of matrices, the product of their norms (its own eigenvalues can all
// be rounding noise: sqrt(S1) S2 sqrt(S1) is 0 when S1 and S2 have disjoint supports).
void check_psd(const VecX& w, int64_t dim, const std::string& what, double scale = 0) {
  const double largest = w.cwiseAbs().maxCoeff();
  const double tol = std::max(1e-10, 1e-6 * static_cast<double>(dim)) * std::max(largest, scale);
  DD_CHECK(w.minCoeff() >= -tol, what, " is not positive semidefinite: it has the eigenvalue ", w.minCoeff(),
           " (the largest magnitude is ", largest, ", the scale ", std::max(largest, scale), ")");
}

int64_t parse_count(const std::string& text, const std::string& where) {
  DD_CHECK(!text.empty() && text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos, where,
           ": metadata 'count' is \"", text, "\", not a non-negative integer");
  return std::stoll(text);
}

// The checks load_stats makes on the arrays it found, whichever the format.
FidStats stats_from(std::vector<double> mu, const std::vector<int64_t>& mu_shape, std::vector<double> sigma,
                    const std::vector<int64_t>& sigma_shape, const std::string& where) {
  auto shape_text = [](const std::vector<int64_t>& s) {
    std::string t = "[";
    for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
    return t + "]";
  };
  DD_CHECK(mu_shape.size() == 1 && mu_shape[0] >= 1, where, ": mu has shape ", shape_text(mu_shape),
           "; expected [dim] with dim >= 1");
  DD_CHECK(sigma_shape.size() == 2 && sigma_shape[0] == sigma_shape[1], where, ": sigma has shape ",
           shape_text(sigma_shape), ", not a square matrix");
  DD_CHECK(sigma_shape[0] == mu_shape[0], where, ": sigma is ", shape_text(sigma_shape), " but mu has ", mu_shape[0],
           " elements");
  FidStats s;
  s.dim = mu_shape[0];
  s.mu = std::move(mu);
  s.sigma = std::move(sigma);
  check_stats(s, where);
  return s;
}

}  // namespace

// ---- FeatureStats -------------------------------------------------------------------------------

FeatureStats::FeatureStats(int64_t dim, int64_t chunk_rows) : dim_(dim), chunk_rows_(chunk_rows) {
  DD_CHECK(dim >= 1 && dim <= kMaxDim, "FeatureStats: dim ", dim, " is out of range [1, ", kMaxDim, "]");
  DD_CHECK(chunk_rows >= 0, "FeatureStats: negative chunk_rows ", chunk_rows);
  if (chunk_rows_ == 0) chunk_rows_ = std::max<int64_t>(1, kChunkDoubles / dim);
  mean_.assign(static_cast<std::size_t>(dim), 0.0);
  scatter_.assign(static_cast<std::size_t>(dim * dim), 0.0);
}

void FeatureStats::add(const float* rows, int64_t n) { add_rows(rows, n); }
void FeatureStats::add(const double* rows, int64_t n) { add_rows(rows, n); }

template <typename T>
void FeatureStats::add_rows(const T* rows, int64_t n) {
  DD_CHECK(n >= 0, "FeatureStats::add: negative row count ", n);
  if (n == 0) return;
  DD_CHECK(rows != nullptr, "FeatureStats::add: ", n, " rows from a null pointer");
  DD_CHECK(n <= std::numeric_limits<int64_t>::max() / dim_, "FeatureStats::add: ", n, " rows of ", dim_,
           " overflow int64");
  // Every value first, so a bad batch leaves the statistics as they were.
  for (int64_t i = 0; i < n * dim_; ++i)
    DD_CHECK(std::isfinite(rows[i]), "FeatureStats::add: row ", i / dim_, " column ", i % dim_, " of the batch is ",
             rows[i]);
  Eigen::Map<VecX> mean(mean_.data(), dim_);
  Eigen::Map<MatX> scatter(scatter_.data(), dim_, dim_);
  MatX x;
  for (int64_t r = 0; r < n; r += chunk_rows_) {
    const int64_t nb = std::min(chunk_rows_, n - r);
    x = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(rows + r * dim_, nb, dim_)
            .template cast<double>();
    const VecX batch_mean = x.colwise().mean().transpose();
    x.rowwise() -= batch_mean.transpose();
    // Chan et al.: M = M_a + M_b + delta delta^T n_a n_b / n, mean = mean_a + delta n_b / n, with
    // M_b the batch's own scatter (added by a SYRK of the centred batch, lower triangle only).
    const double na = static_cast<double>(count_), nbd = static_cast<double>(nb), nt = na + nbd;
    const VecX delta = batch_mean - mean;
    scatter.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
    if (count_ > 0) scatter.selfadjointView<Eigen::Lower>().rankUpdate(delta, na * nbd / nt);
    mean += delta * (nbd / nt);
    count_ += nb;
  }
}

void FeatureStats::merge(const FeatureStats& other) {
  DD_CHECK(other.dim_ == dim_, "FeatureStats::merge: dims differ (", dim_, " here, ", other.dim_, " merged)");
  if (other.count_ == 0) return;
  const double na = static_cast<double>(count_), nb = static_cast<double>(other.count_), nt = na + nb;
  Eigen::Map<VecX> mean(mean_.data(), dim_);
  Eigen::Map<MatX> scatter(scatter_.data(), dim_, dim_);
  const Eigen::Map<const VecX> other_mean(other.mean_.data(), dim_);
  const Eigen::Map<const MatX> other_scatter(other.scatter_.data(), dim_, dim_);
  // Copies first: other may be *this.
  const VecX delta = other_mean - mean;
  const MatX add = other_scatter;
  scatter += add;  // both upper triangles stay 0
  if (count_ > 0) scatter.selfadjointView<Eigen::Lower>().rankUpdate(delta, na * nb / nt);
  mean += delta * (nb / nt);
  count_ += other.count_;
}

std::vector<double> FeatureStats::mean() const {
  DD_CHECK(count_ >= 1, "FeatureStats::mean: no rows were added");
  return mean_;
}

std::vector<double> FeatureStats::covariance() const {
  DD_CHECK(count_ >= 2, "FeatureStats::covariance: needs at least 2 rows (an unbiased covariance divides by n - 1), ",
           "has ", count_);
  const double inv = 1.0 / static_cast<double>(count_ - 1);
  std::vector<double> out(scatter_.size());
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = 0; j < dim_; ++j) {
      // Column-major lower triangle: element (r, c) with r >= c at c * dim + r.
      const int64_t r = std::max(i, j), c = std::min(i, j);
      out[i * dim_ + j] = scatter_[c * dim_ + r] * inv;
    }
  return out;
}

FidStats finalize(const FeatureStats& s) {
  FidStats out;
  out.sigma = s.covariance();  // first: it says what is missing when count < 2
  out.mu = s.mean();
  out.dim = s.dim();
  out.count = s.count();
  return out;
}

// ---- the distance -------------------------------------------------------------------------------

double frechet_distance(const FidStats& a, const FidStats& b) {
  check_stats(a, "frechet_distance: the first statistics");
  check_stats(b, "frechet_distance: the second statistics");
  DD_CHECK(a.dim == b.dim, "frechet_distance: the statistics have different dims (", a.dim, " and ", b.dim,
           "): they come from different feature extractors");
  const int64_t d = a.dim;
  const MatX s1 = symmetric_matrix(a, "frechet_distance: the first statistics");
  const MatX s2 = symmetric_matrix(b, "frechet_distance: the second statistics");
  const Eigen::Map<const VecX> mu1(a.mu.data(), d), mu2(b.mu.data(), d);
  const double mean_term = (mu1 - mu2).squaredNorm();

  Eigen::SelfAdjointEigenSolver<MatX> es1(s1, Eigen::ComputeEigenvectors);
  DD_CHECK(es1.info() == Eigen::Success, "frechet_distance: the eigendecomposition of the first sigma did not converge");
  check_psd(es1.eigenvalues(), d, "frechet_distance: the first sigma");
  const VecX root_w = es1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  const MatX& v = es1.eigenvectors();
  const MatX root1 = v * root_w.asDiagonal() * v.transpose();
  MatX m = root1 * s2 * root1;
  m = (0.5 * (m + m.transpose())).eval();
  Eigen::SelfAdjointEigenSolver<MatX> es2(m, Eigen::EigenvaluesOnly);
  DD_CHECK(es2.info() == Eigen::Success,
           "frechet_distance: the eigendecomposition of sqrt(S1) S2 sqrt(S1) did not converge");
  // ||sqrt(S1) S2 sqrt(S1)|| <= ||S1|| ||S2||, the latter bounded by S2's largest absolute row sum.
  const double product_scale = root_w.maxCoeff() * root_w.maxCoeff() * s2.cwiseAbs().rowwise().sum().maxCoeff();
  check_psd(es2.eigenvalues(), d, "frechet_distance: sqrt(S1) S2 sqrt(S1) (so the second sigma)", product_scale);
  const double tr_sqrt = es2.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  const double fid = mean_term + s1.trace() + s2.trace() - 2.0 * tr_sqrt;
  return std::max(0.0, fid);
}

// ---- files --------------------------------------------------------------------------------------

void save_stats(const std::string& path, const FidStats& s) {
  const std::string where = "save_stats " + quoted(path);
  check_stats(s, where);
  if (ends_with(path, ".safetensors")) {
    DD_CHECK(!s.metadata.count("count"), where, ": metadata may not use the key 'count' (the file's count is s.count)");
    SafeTensorsFile f;
    f.put_f64("mu", s.mu, {s.dim});
    f.put_f64("sigma", s.sigma, {s.dim, s.dim});
    f.metadata = s.metadata;
    f.metadata["count"] = std::to_string(s.count);
    save_safetensors(path, f);
  } else if (ends_with(path, ".npz")) {
    npz::save_npz(path, {{"mu", npz::npy_from_f64(s.mu, {s.dim})}, {"sigma", npz::npy_from_f64(s.sigma, {s.dim, s.dim})}});
  } else {
    DD_FAIL(where, kUnknownExtension);
  }
}

FidStats load_stats(const std::string& path) {
  const std::string where = "load_stats " + quoted(path);
  if (ends_with(path, ".safetensors")) {
    const SafeTensorsFile f = load_safetensors(path);
    for (const char* name : {"mu", "sigma"}) {
      const SafeTensor& t = f.at(name);  // names the file and what it holds when absent
      DD_CHECK(t.dtype == "F64" || t.dtype == "F32", where, ": '", name, "' is ", t.dtype, "; expected F64 (or F32)");
    }
    const SafeTensor& mu = f.at("mu");
    const SafeTensor& sigma = f.at("sigma");
    FidStats s = stats_from(mu.to_f64(), mu.shape, sigma.to_f64(), sigma.shape, where);
    s.metadata = f.metadata;
    const auto count = s.metadata.find("count");
    if (count != s.metadata.end()) {
      s.count = parse_count(count->second, where);
      s.metadata.erase(count);
    }
    return s;
  }
  if (ends_with(path, ".npz")) {
    const std::map<std::string, npz::NpyArray> arrays = npz::load_npz(path);
    std::string keys;
    for (const auto& [k, a] : arrays) keys += (keys.empty() ? "" : ", ") + k;
    for (const char* name : {"mu", "sigma"}) {
      const auto it = arrays.find(name);
      DD_CHECK(it != arrays.end(), where, ": no array '", name, "'; it holds ", arrays.size(), " array(s): ",
               keys.empty() ? "(none)" : keys, " (pytorch-fid's statistics are mu and sigma)");
      DD_CHECK(it->second.descr == "<f8" || it->second.descr == "<f4", where, ": '", name, "' has dtype '",
               it->second.descr, "'; expected '<f8' or '<f4'");
    }
    const npz::NpyArray& mu = arrays.at("mu");
    const npz::NpyArray& sigma = arrays.at("sigma");
    return stats_from(mu.to_f64(where), mu.shape, sigma.to_f64(where), sigma.shape, where);
  }
  DD_FAIL(where, kUnknownExtension);
}

}  // namespace dd::fid
