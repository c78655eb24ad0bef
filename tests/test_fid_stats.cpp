// FID statistics (models/fid_stats.h) and the .npy/.npz files they travel in (engine/npz.h):
// the streaming mean/covariance against a two-pass float64 computation, the Fréchet distance against
// closed forms and against pytorch-fid (scipy's sqrtm), the files against numpy, broken files.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/npz.h"
#include "engine/safetensors.h"
#include "models/fid_stats.h"
#include "tests/support/compare.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;
using Catch::Contains;

namespace {

// Rows [n, d] of float32-representable values: x = offset + scale * (mixing of normals), so the
// features are correlated and sit far from 0 (where a sum of squares would cancel).
std::vector<float> random_features(Random& rng, int64_t n, int64_t d, double offset, double scale) {
  const std::vector<double> z = rng.normal(n * d);
  const std::vector<double> mix = rng.normal(d * d, 1.0 / std::sqrt(static_cast<double>(d)));
  std::vector<float> out(static_cast<std::size_t>(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double v = 0;
      for (int64_t k = 0; k < d; ++k) v += z[i * d + k] * mix[k * d + j];
      out[i * d + j] = static_cast<float>(offset + scale * (z[i * d + j] + v));
    }
  return out;
}

// The two-pass float64 reference: the mean, then the mean of centred products over n - 1.
void two_pass(const std::vector<float>& x, int64_t n, int64_t d, std::vector<double>& mean, std::vector<double>& cov) {
  mean.assign(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) mean[j] += x[i * d + j];
  for (double& m : mean) m /= static_cast<double>(n);
  cov.assign(d * d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b) cov[a * d + b] += (x[i * d + a] - mean[a]) * (x[i * d + b] - mean[b]);
  for (double& c : cov) c /= static_cast<double>(n - 1);
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// max |a - b| relative to max |b|.
double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst / std::max(max_abs(b), 1e-300);
}

fid::FidStats make_stats(const std::vector<double>& mu, const std::vector<double>& sigma) {
  fid::FidStats s;
  s.dim = static_cast<int64_t>(mu.size());
  s.mu = mu;
  s.sigma = sigma;
  return s;
}

fid::FidStats diagonal_stats(const std::vector<double>& mu, const std::vector<double>& diag) {
  const std::size_t d = diag.size();
  std::vector<double> sigma(d * d, 0.0);
  for (std::size_t i = 0; i < d; ++i) sigma[i * d + i] = diag[i];
  return make_stats(mu, sigma);
}

// A random orthogonal d x d matrix by Gram-Schmidt on normals (row-major), written out here so the
// closed-form checks share no code with the implementation.
std::vector<double> random_orthogonal(Random& rng, int64_t d) {
  std::vector<double> q = rng.normal(d * d);
  for (int64_t i = 0; i < d; ++i) {
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t k = 0; k < i; ++k) {
        double dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += q[i * d + j] * q[k * d + j];
        for (int64_t j = 0; j < d; ++j) q[i * d + j] -= dot * q[k * d + j];
      }
    double norm = 0;
    for (int64_t j = 0; j < d; ++j) norm += q[i * d + j] * q[i * d + j];
    norm = std::sqrt(norm);
    for (int64_t j = 0; j < d; ++j) q[i * d + j] /= norm;
  }
  return q;
}

// Q^T diag(w) Q (Q's rows are the eigenvectors).
std::vector<double> with_eigenbasis(const std::vector<double>& q, const std::vector<double>& w) {
  const int64_t d = static_cast<int64_t>(w.size());
  std::vector<double> s(d * d, 0.0);
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < d; ++b)
      for (int64_t k = 0; k < d; ++k) s[a * d + b] += q[k * d + a] * w[k] * q[k * d + b];
  // Exactly symmetric, as a covariance is.
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < a; ++b) s[b * d + a] = s[a * d + b];
  return s;
}

// The closed form for covariances with a common eigenbasis (eigenvalues w1, w2):
// ||mu1 - mu2||^2 + sum (sqrt(w1) - sqrt(w2))^2.
double commuting_fid(const std::vector<double>& mu1, const std::vector<double>& mu2, const std::vector<double>& w1,
                     const std::vector<double>& w2) {
  double f = 0;
  for (std::size_t i = 0; i < mu1.size(); ++i) f += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
  for (std::size_t i = 0; i < w1.size(); ++i) f += std::pow(std::sqrt(w1[i]) - std::sqrt(w2[i]), 2);
  return f;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<double> f32_values(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

}  // namespace

// ---- FeatureStats -------------------------------------------------------------------------------

TEST_CASE("fid: FeatureStats equals a two-pass float64 mean and covariance over uneven batches and merges", "[fid]") {
  DD_TEST_RANDOM(rng);
  const int64_t d = rng.uniform_int(1, 24);
  const int64_t n = rng.uniform_int(40, 300);
  // Features far from zero: 1000 + O(1), where E[x^2] - E[x]^2 would lose ~6 digits.
  const std::vector<float> x = random_features(rng, n, d, 1000.0, 1.0);
  std::vector<double> mean, cov;
  two_pass(x, n, d, mean, cov);
  INFO("n " << n << " d " << d);

  // One stream of uneven batches (0 and 1 rows included), folded in chunks of a few rows.
  fid::FeatureStats whole(d, rng.uniform_int(1, 7));
  // Two halves at a random split, each its own stream, then merged (and an empty one merged in).
  fid::FeatureStats first(d), second(d), empty(d);
  const int64_t split = rng.uniform_int(1, static_cast<int>(n - 1));
  int64_t at = 0;
  while (at < n) {
    const int64_t b = std::min<int64_t>(n - at, rng.uniform_int(0, 37));
    whole.add(x.data() + at * d, b);
    for (int64_t r = at; r < at + b; ++r) (r < split ? first : second).add(x.data() + r * d, 1);
    at += b;
  }
  whole.add(x.data(), 0);
  REQUIRE(whole.count() == n);
  REQUIRE(whole.dim() == d);
  first.merge(second);
  first.merge(empty);
  empty.merge(first);  // into an empty one: a copy
  for (const fid::FeatureStats* s : {&whole, &first, &empty}) {
    REQUIRE(s->count() == n);
    // Both are float64 with O(n) rounding steps: far below 1e-12 of the values.
    CHECK(rel_diff(s->mean(), mean) < 1e-12);
    CHECK(rel_diff(s->covariance(), cov) < 1e-11);
  }
  // float64 rows give the same statistics as the float32 rows they widen.
  fid::FeatureStats wide(d);
  const std::vector<double> xd = f32_values(x);
  wide.add(xd.data(), n);
  CHECK(rel_diff(wide.covariance(), cov) < 1e-11);

  // Merging a stream into itself doubles every row: the mean stays, the scatter doubles.
  fid::FeatureStats twice(d);
  twice.add(x.data(), n);
  twice.merge(twice);
  REQUIRE(twice.count() == 2 * n);
  std::vector<double> cov2 = cov;
  for (double& c : cov2) c *= 2.0 * static_cast<double>(n - 1) / static_cast<double>(2 * n - 1);
  CHECK(rel_diff(twice.mean(), mean) < 1e-12);
  CHECK(rel_diff(twice.covariance(), cov2) < 1e-11);

  const fid::FidStats fs = fid::finalize(whole);
  CHECK(fs.dim == d);
  CHECK(fs.count == n);
  CHECK(fs.mu == whole.mean());
  CHECK(fs.sigma == whole.covariance());
}

TEST_CASE("fid: FeatureStats needs two rows for a covariance and refuses bad input", "[fid]") {
  fid::FeatureStats s(3);
  expect_error([&] { (void)s.mean(); }, {"no rows"});
  expect_error([&] { (void)s.covariance(); }, {"at least 2 rows", "has 0"});
  const float row[3] = {1, 2, 3};
  s.add(row, 1);
  CHECK(s.mean() == std::vector<double>{1, 2, 3});
  expect_error([&] { (void)s.covariance(); }, {"at least 2 rows", "has 1"});
  expect_error([&] { (void)fid::finalize(s); }, {"at least 2 rows"});
  // A non-finite value is refused, naming where it is, and changes nothing.
  const float bad[6] = {1, 2, 3, 4, NAN, 6};
  expect_error([&] { s.add(bad, 2); }, {"row 1 column 1", "nan"});
  CHECK(s.count() == 1);
  const float inf[3] = {0, INFINITY, 0};
  expect_error([&] { s.add(inf, 1); }, {"row 0 column 1", "inf"});
  expect_error([&] { s.add(row, -1); }, {"negative row count"});
  fid::FeatureStats other(4);
  expect_error([&] { s.merge(other); }, {"dims differ", "3 here, 4 merged"});
  expect_error([] { fid::FeatureStats z(0); }, {"dim 0 is out of range"});
}

// ---- frechet_distance ---------------------------------------------------------------------------

TEST_CASE("fid: frechet_distance equals the closed forms of diagonal and commuting covariances", "[fid]") {
  DD_TEST_RANDOM(rng);
  // One dimension: (m1 - m2)^2 + (sqrt(s1) - sqrt(s2))^2.
  CHECK(fid::frechet_distance(diagonal_stats({1.0}, {4.0}), diagonal_stats({3.0}, {9.0})) ==
        Approx(4.0 + 1.0).epsilon(1e-12));

  for (int trial = 0; trial < 4; ++trial) {
    const int64_t d = rng.uniform_int(2, 40);
    INFO("trial " << trial << " d " << d);
    const std::vector<double> mu1 = rng.normal(d), mu2 = rng.normal(d, 2.0);
    std::vector<double> w1 = rng.uniform(d, 0.01, 5.0), w2 = rng.uniform(d, 0.01, 5.0);
    if (trial >= 2) {  // singular: some eigenvalues exactly 0 (fewer samples than dimensions)
      for (int64_t i = 0; i < d; i += 3) w1[i] = 0;
      for (int64_t i = 1; i < d; i += 4) w2[i] = 0;
    }
    const double want = commuting_fid(mu1, mu2, w1, w2);
    // Diagonal covariances.
    CHECK(fid::frechet_distance(diagonal_stats(mu1, w1), diagonal_stats(mu2, w2)) == Approx(want).epsilon(1e-10));
    // The same spectra in a common random eigenbasis: S1 S2 commute, Tr sqrt(S1 S2) = sum sqrt(w1 w2).
    // Rounding leaves a zero eigenvalue at ~1e-16 of the largest, and its square root at ~1e-8: singular
    // covariances are good to ~1e-8 relative in any method (scipy's sqrtm too), full-rank ones to ~1e-13.
    const double tol = trial >= 2 ? 1e-7 : 1e-10;
    const std::vector<double> q = random_orthogonal(rng, d);
    const fid::FidStats a = make_stats(mu1, with_eigenbasis(q, w1)), b = make_stats(mu2, with_eigenbasis(q, w2));
    CHECK(fid::frechet_distance(a, b) == Approx(want).epsilon(tol));
    CHECK(fid::frechet_distance(b, a) == Approx(want).epsilon(tol));
    // Identical statistics: 0, from a full-rank and from a singular covariance alike.
    CHECK(std::abs(fid::frechet_distance(a, a)) <= 1e-9);
    CHECK(std::abs(fid::frechet_distance(b, b)) <= 1e-9);
  }

  // Disjoint supports: sqrt(S1) S2 sqrt(S1) is 0, its eigenvalues all rounding noise of either sign
  // (-9e-17 in a CI run at d = 2): still a covariance product, FID = |mu1 - mu2|^2 + Tr S1 + Tr S2.
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t d = 2 + trial % 4;
    INFO("disjoint supports, trial " << trial << " d " << d);
    std::vector<double> w1(d, 0.0), w2(d, 0.0);
    for (int64_t i = 0; i < d; ++i) (i % 2 ? w1 : w2)[i] = rng.uniform(1, 0.5, 3.0)[0];
    const std::vector<double> mu1 = rng.normal(d), mu2 = rng.normal(d);
    const std::vector<double> q = random_orthogonal(rng, d);
    const fid::FidStats a = make_stats(mu1, with_eigenbasis(q, w1)), b = make_stats(mu2, with_eigenbasis(q, w2));
    const double want = commuting_fid(mu1, mu2, w1, w2);
    CHECK(fid::frechet_distance(a, b) == Approx(want).epsilon(1e-7));
    CHECK(fid::frechet_distance(b, a) == Approx(want).epsilon(1e-7));
  }

  // Statistics from features: identical stats give 0; and the distance is symmetric.
  const int64_t d = 20;
  fid::FeatureStats fa(d), fb(d);
  const std::vector<float> xa = random_features(rng, 300, d, 0.5, 2.0), xb = random_features(rng, 15, d, 0.0, 1.0);
  fa.add(xa.data(), 300);
  fb.add(xb.data(), 15);  // rank 14 of 20
  const fid::FidStats sa = fid::finalize(fa), sb = fid::finalize(fb);
  // Identical statistics give 0 up to the square roots of S's smallest eigenvalues: rounding moves
  // the eigenvalues of sqrt(S) S sqrt(S) = S^2 by about d eps ||S||^2, and a square root turns an
  // error e near 0 into up to sqrt(e), so |FID| <= 2 d sqrt(d eps) ||S||. xa's mixing matrix is
  // sometimes near-singular: one draw in about 60 gave 6e-9, past the 1e-9 this check once had.
  auto identical_bound = [d](const fid::FidStats& s) {
    double norm = 0;  // the largest absolute row sum, >= the spectral norm
    for (int64_t i = 0; i < d; ++i) {
      double row = 0;
      for (int64_t j = 0; j < d; ++j) row += std::abs(s.sigma[i * d + j]);
      norm = std::max(norm, row);
    }
    return 2.0 * d * std::sqrt(d * std::numeric_limits<double>::epsilon()) * norm;
  };
  CHECK(std::abs(fid::frechet_distance(sa, sa)) <= identical_bound(sa));
  CHECK(std::abs(fid::frechet_distance(sb, sb)) <= identical_bound(sb));
  CHECK(fid::frechet_distance(sa, sb) == Approx(fid::frechet_distance(sb, sa)).epsilon(1e-7));  // sb singular
}

TEST_CASE("fid: frechet_distance refuses mismatched, non-finite, asymmetric and non-PSD statistics", "[fid]") {
  const fid::FidStats a = diagonal_stats({0, 0}, {1, 2});
  expect_error([&] { (void)fid::frechet_distance(a, diagonal_stats({0, 0, 0}, {1, 1, 1})); },
               {"different dims (2 and 3)"});
  fid::FidStats bad = a;
  bad.mu.push_back(0);
  expect_error([&] { (void)fid::frechet_distance(a, bad); }, {"second statistics", "mu holds 3 values but dim is 2"});
  bad = a;
  bad.sigma.pop_back();
  expect_error([&] { (void)fid::frechet_distance(bad, a); }, {"first statistics", "sigma holds 3 values"});
  bad = a;
  bad.sigma[1] = NAN;
  expect_error([&] { (void)fid::frechet_distance(a, bad); }, {"sigma[0, 1] is nan"});
  bad = a;
  bad.mu[1] = INFINITY;
  expect_error([&] { (void)fid::frechet_distance(bad, a); }, {"mu[1] is inf"});
  bad = a;
  bad.sigma[1] = 0.5;  // sigma[0,1] = 0.5 but sigma[1,0] = 0
  expect_error([&] { (void)fid::frechet_distance(a, bad); }, {"not symmetric", "sigma[1, 0]"});
  bad = diagonal_stats({0, 0}, {1, -0.5});
  expect_error([&] { (void)fid::frechet_distance(bad, a); }, {"first sigma is not positive semidefinite", "-0.5"});
  expect_error([&] { (void)fid::frechet_distance(a, bad); }, {"not positive semidefinite"});
  expect_error([&] { (void)fid::frechet_distance(fid::FidStats{}, a); }, {"dim 0 is out of range"});
  // Symmetric within rounding is accepted (and averaged).
  fid::FidStats nearly = diagonal_stats({0, 0}, {1, 2});
  nearly.sigma[1] = 1e-12;
  CHECK(std::isfinite(fid::frechet_distance(nearly, a)));
}

// ---- pytorch-fid ----------------------------------------------------------------------------------

TEST_CASE("fid: pytorch-fid's calculate_frechet_distance agrees with ours, singular covariances included",
          "[fid][python]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    int64_t na, nb, d;
    double offset_a, offset_b, scale_b;
  };
  // Full rank; fewer samples than dimensions (rank 49 and 29 of 64: singular products, where scipy's
  // sqrtm is least accurate); both far from zero; equal distributions.
  const std::vector<Case> cases = {{400, 300, 16, 0.0, 0.3, 1.2},
                                   {50, 50, 64, 0.0, 0.0, 1.0},
                                   {50, 30, 64, 0.0, 1.0, 1.3},
                                   {500, 200, 24, 100.0, 100.2, 0.5},
                                   {80, 90, 8, 0.0, 0.0, 1.0}};
  TempDir dir("dd_fid_ref");
  SafeTensorsFile in;
  std::vector<std::vector<float>> xa, xb;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    xa.push_back(random_features(rng, c.na, c.d, c.offset_a, 1.0));
    xb.push_back(random_features(rng, c.nb, c.d, c.offset_b, c.scale_b));
    in.put_f32("a" + std::to_string(k), Tensor::from_vector({c.na, c.d}, xa.back()));
    in.put_f32("b" + std::to_string(k), Tensor::from_vector({c.nb, c.d}, xb.back()));
  }
  save_safetensors(dir.file("in.safetensors"), in);
  run_reference_script("fid_ref.py", {"frechet", dir.file("in.safetensors"), dir.file("out.safetensors")});
  const SafeTensorsFile ref = load_safetensors(dir.file("out.safetensors"));
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    const std::string K = std::to_string(k);
    INFO("case " << k << ": " << c.na << " and " << c.nb << " samples of " << c.d << " dims");
    fid::FeatureStats fa(c.d), fb(c.d);
    fa.add(xa[k].data(), c.na);
    fb.add(xb[k].data(), c.nb);
    const fid::FidStats ours_a = fid::finalize(fa), ours_b = fid::finalize(fb);
    // Our statistics against numpy's np.mean / np.cov in float64.
    CHECK(rel_diff(ours_a.mu, ref.at("mu_a" + K).to_f64()) < 1e-12);
    CHECK(rel_diff(ours_b.mu, ref.at("mu_b" + K).to_f64()) < 1e-12);
    CHECK(rel_diff(ours_a.sigma, ref.at("sigma_a" + K).to_f64()) < 1e-12);
    CHECK(rel_diff(ours_b.sigma, ref.at("sigma_b" + K).to_f64()) < 1e-12);
    // The distance: pytorch-fid's (scipy's sqrtm of S1 S2) against ours (symmetric eigensolvers), on
    // numpy's statistics and end to end on ours, within 1e-6 relative (measured: ~1e-8 at rank 49 of
    // 64, 1e-14 at full rank).
    const double want = ref.at("fid" + K).to_f64().at(0);
    const fid::FidStats np_a = make_stats(ref.at("mu_a" + K).to_f64(), ref.at("sigma_a" + K).to_f64());
    const fid::FidStats np_b = make_stats(ref.at("mu_b" + K).to_f64(), ref.at("sigma_b" + K).to_f64());
    const double on_numpy = fid::frechet_distance(np_a, np_b);
    const double end_to_end = fid::frechet_distance(ours_a, ours_b);
    INFO("pytorch-fid " << want << "; relative differences: ours on numpy's stats "
                        << std::abs(on_numpy - want) / std::abs(want) << ", ours end to end "
                        << std::abs(end_to_end - want) / std::abs(want));
    CHECK(std::abs(on_numpy - want) <= 1e-6 * std::abs(want));
    CHECK(std::abs(end_to_end - want) <= 1e-6 * std::abs(want));
  }
}

TEST_CASE("fid: .npz files: numpy and pytorch-fid read ours, we read np.savez and np.savez_compressed in f8 and f4",
          "[fid][python]") {
  DD_TEST_RANDOM(rng);
  TempDir dir("dd_fid_npz");
  const int64_t d = 7;  // the script's own statistics are 7-dimensional too
  fid::FeatureStats fs(d);
  const std::vector<float> x = random_features(rng, 25, d, 0.2, 1.0);
  fs.add(x.data(), 25);
  fid::FidStats ours = fid::finalize(fs);
  fid::save_stats(dir.file("ours.npz"), ours);
  fid::save_stats(dir.file("ours.safetensors"), ours);
  run_reference_script("fid_ref.py", {"npz", dir.str()});

  const SafeTensorsFile expect = load_safetensors(dir.file("np_expect.safetensors"));
  for (const std::string dtype : {"f8", "f4"}) {
    for (const std::string writer : {"savez", "savez_compressed"}) {
      const std::string path = dir.file("np_" + writer + "_" + dtype + ".npz");
      INFO(path);
      const fid::FidStats s = fid::load_stats(path);
      CHECK(s.dim == d);
      CHECK(s.count == 0);  // pytorch-fid's files do not say
      CHECK(s.mu == expect.at("mu_" + dtype).to_f64());        // bit for bit (f4 widened exactly)
      CHECK(s.sigma == expect.at("sigma_" + dtype).to_f64());
    }
  }
  // pytorch-fid's distance between our file and numpy's, each read by its loader, is ours too.
  const double want = load_safetensors(dir.file("np_fid.safetensors")).at("fid").to_f64().at(0);
  const double got = fid::frechet_distance(fid::load_stats(dir.file("ours.npz")),
                                           fid::load_stats(dir.file("np_savez_f8.npz")));
  CHECK(std::abs(got - want) <= 1e-6 * std::abs(want));
}

// ---- files ----------------------------------------------------------------------------------------

TEST_CASE("fid: stats files round-trip: .safetensors keeps F64, count and metadata, .npz the values", "[fid]") {
  DD_TEST_RANDOM(rng);
  TempDir dir("dd_fid_files");
  const int64_t d = rng.uniform_int(1, 12);
  fid::FeatureStats fs(d);
  const std::vector<float> x = random_features(rng, 30, d, 3.0, 1.0);
  fs.add(x.data(), 30);
  fid::FidStats s = fid::finalize(fs);
  s.metadata["dataset"] = "fashion-mnist train";
  s.metadata["features"] = "pool3";

  fid::save_stats(dir.file("s.safetensors"), s);
  const fid::FidStats a = fid::load_stats(dir.file("s.safetensors"));
  CHECK(a.dim == d);
  CHECK(a.count == 30);
  CHECK(a.mu == s.mu);
  CHECK(a.sigma == s.sigma);
  CHECK(a.metadata == s.metadata);
  const SafeTensorsFile raw = load_safetensors(dir.file("s.safetensors"));
  CHECK(raw.at("mu").dtype == "F64");
  CHECK(raw.at("sigma").dtype == "F64");
  CHECK(raw.at("sigma").shape == std::vector<int64_t>{d, d});
  CHECK(raw.metadata.at("count") == "30");

  fid::save_stats(dir.file("s.npz"), s);
  const fid::FidStats b = fid::load_stats(dir.file("s.npz"));
  CHECK(b.dim == d);
  CHECK(b.mu == s.mu);
  CHECK(b.sigma == s.sigma);
  // Equal inputs, equal bytes (a fixed timestamp in the zip).
  fid::save_stats(dir.file("t.npz"), s);
  CHECK(read_file(dir.file("s.npz")) == read_file(dir.file("t.npz")));
  // F32 safetensors statistics load too (widened).
  SafeTensorsFile f32;
  f32.put_f32("mu", Tensor::from_vector({2}, {1.5f, -2.0f}));
  f32.put_f32("sigma", Tensor::from_vector({2, 2}, {1.0f, 0.25f, 0.25f, 2.0f}));
  save_safetensors(dir.file("f32.safetensors"), f32);
  const fid::FidStats c = fid::load_stats(dir.file("f32.safetensors"));
  CHECK(c.mu == std::vector<double>{1.5, -2.0});
  CHECK(c.sigma == std::vector<double>{1.0, 0.25, 0.25, 2.0});
  CHECK(c.count == 0);

  expect_error([&] { fid::save_stats(dir.file("s.bin"), s); }, {"s.bin", "unknown file type"});
  expect_error([&] { (void)fid::load_stats(dir.file("s.bin")); }, {"s.bin", "unknown file type"});
  fid::FidStats reserved = s;
  reserved.metadata["count"] = "7";
  expect_error([&] { fid::save_stats(dir.file("r.safetensors"), reserved); }, {"r.safetensors", "'count'"});
  fid::FidStats broken = s;
  broken.sigma.pop_back();
  expect_error([&] { fid::save_stats(dir.file("b.npz"), broken); }, {"b.npz", "sigma holds"});
}

TEST_CASE("fid: broken stats files are refused, naming the file and what is wrong", "[fid]") {
  TempDir dir("dd_fid_bad");
  const fid::FidStats good = diagonal_stats({0.5, 1.0, -1.0}, {1.0, 2.0, 3.0});
  fid::save_stats(dir.file("good.npz"), good);
  const std::string bytes = read_file(dir.file("good.npz"));
  auto npz_with = [&](const std::string& name, const std::map<std::string, npz::NpyArray>& arrays) {
    npz::save_npz(dir.file(name), arrays);
    return dir.file(name);
  };
  auto load = [](const std::string& path) { return [path] { (void)fid::load_stats(path); }; };

  SECTION("missing file") { expect_error(load(dir.file("none.npz")), {"none.npz", "no such file"}); }
  SECTION("truncated npz, at every length") {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      write_file(dir.file("cut.npz"), bytes.substr(0, n));
      INFO("cut at " << n << " of " << bytes.size());
      expect_error(load(dir.file("cut.npz")), {"cut.npz"});
    }
  }
  SECTION("a flipped data byte fails the CRC-32") {
    std::string b = bytes;
    const std::size_t at = b.find("\x93NUMPY") + 130;  // inside mu.npy's data (after its 128-byte header)
    b[at] = static_cast<char>(b[at] ^ 0x10);
    write_file(dir.file("flip.npz"), b);
    expect_error(load(dir.file("flip.npz")), {"flip.npz", "mu.npy", "CRC-32"});
  }
  SECTION("wrong keys") {
    const std::string p = npz_with("keys.npz", {{"mean", npz::npy_from_f64({0, 0}, {2})},
                                                {"cov", npz::npy_from_f64({1, 0, 0, 1}, {2, 2})}});
    expect_error(load(p), {"keys.npz", "no array 'mu'", "cov, mean"});
  }
  SECTION("wrong dtype") {
    npz::NpyArray ints;
    ints.descr = "<i8";
    ints.shape = {2};
    ints.bytes.assign(16, 0);
    const std::string p = npz_with("dtype.npz", {{"mu", ints}, {"sigma", npz::npy_from_f64({1, 0, 0, 1}, {2, 2})}});
    expect_error(load(p), {"dtype.npz", "'mu' has dtype '<i8'", "'<f8' or '<f4'"});
  }
  SECTION("non-square sigma") {
    const std::string p = npz_with("rect.npz", {{"mu", npz::npy_from_f64({0, 0, 0}, {3})},
                                                {"sigma", npz::npy_from_f64(std::vector<double>(12, 0.0), {3, 4})}});
    expect_error(load(p), {"rect.npz", "sigma has shape [3, 4], not a square matrix"});
  }
  SECTION("sigma and mu disagree") {
    const std::string p = npz_with("mismatch.npz", {{"mu", npz::npy_from_f64({0, 0, 0}, {3})},
                                                    {"sigma", npz::npy_from_f64({1, 0, 0, 1}, {2, 2})}});
    expect_error(load(p), {"mismatch.npz", "sigma is [2, 2] but mu has 3 elements"});
  }
  SECTION("mu of two dimensions") {
    const std::string p = npz_with("mu2d.npz", {{"mu", npz::npy_from_f64({0, 0}, {1, 2})},
                                                {"sigma", npz::npy_from_f64({1, 0, 0, 1}, {2, 2})}});
    expect_error(load(p), {"mu2d.npz", "mu has shape [1, 2]"});
  }
  SECTION("a non-finite value") {
    const std::string p = npz_with("nan.npz", {{"mu", npz::npy_from_f64({0, NAN}, {2})},
                                               {"sigma", npz::npy_from_f64({1, 0, 0, 1}, {2, 2})}});
    expect_error(load(p), {"nan.npz", "mu[1] is nan"});
  }
  SECTION("an .npy file named .npz") {
    const std::vector<uint8_t> npy = npz::encode_npy(npz::npy_from_f64({1, 2}, {2}));
    write_file(dir.file("one.npz"), std::string(npy.begin(), npy.end()));
    expect_error(load(dir.file("one.npz")), {"one.npz", "an .npy file (one array), not an .npz"});
  }
  SECTION("not a zip at all") {
    write_file(dir.file("text.npz"), "mu,sigma\n1,2\n");
    expect_error(load(dir.file("text.npz")), {"text.npz", "not a zip archive"});
  }
  SECTION("safetensors: wrong dtype, missing sigma, bad count") {
    SafeTensorsFile f;
    f.put_i64("mu", {0, 0}, {2});
    f.put_f64("sigma", {1, 0, 0, 1}, {2, 2});
    save_safetensors(dir.file("i64.safetensors"), f);
    expect_error(load(dir.file("i64.safetensors")), {"i64.safetensors", "'mu' is I64"});
    SafeTensorsFile g;
    g.put_f64("mu", {0, 0}, {2});
    save_safetensors(dir.file("nosigma.safetensors"), g);
    expect_error(load(dir.file("nosigma.safetensors")), {"nosigma.safetensors", "no tensor 'sigma'"});
    g.put_f64("sigma", {1, 0, 0, 1}, {2, 2});
    g.metadata["count"] = "-3";
    save_safetensors(dir.file("count.safetensors"), g);
    expect_error(load(dir.file("count.safetensors")), {"count.safetensors", "metadata 'count' is \"-3\""});
    g.metadata.erase("count");
    g.put_f64("sigma", std::vector<double>(6, 0.0), {2, 3});
    save_safetensors(dir.file("rect.safetensors"), g);
    expect_error(load(dir.file("rect.safetensors")), {"rect.safetensors", "not a square matrix"});
  }
}
