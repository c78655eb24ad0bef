// The multi-tensor updates against the single-tensor ops they replace in the
// optimizer and the EMA: same arithmetic, so the CPU results are bitwise equal.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/adam.h"
#include "kernels/elementwise.h"
#include "kernels/multi_tensor.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
std::vector<Shape> odd_shapes() { return {{1}, {7}, {3, 5}, {33, 3, 3, 17}, {40000}, {2, 1}}; }

std::vector<Tensor> random_tensors(Random& rng, const std::vector<Shape>& shapes, double scale) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(from_double(s, rng.normal(shape_numel(s), scale)));
  return out;
}

std::vector<Tensor> clones(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.clone());
  return out;
}

void expect_bitwise(const std::string& what, const Tensor& a, const Tensor& b) {
  INFO(what);
  REQUIRE(a.shape() == b.shape());
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  for (std::size_t i = 0; i < va.size(); ++i) {
    INFO("element " << i);
    REQUIRE(va[i] == vb[i]);
  }
}
}  // namespace

TEST_CASE("multi_tensor: adam over a list equals per-tensor adam bitwise", "[multi_tensor][adam]") {
  DD_TEST_RANDOM(rng);
  const auto shapes = odd_shapes();
  auto p = random_tensors(rng, shapes, 1.0), g = random_tensors(rng, shapes, 1.0);
  auto m = random_tensors(rng, shapes, 0.1), v = random_tensors(rng, shapes, 0.1);
  for (Tensor& t : v) t = kernels::mul(t, t);
  auto p2 = clones(p), m2 = clones(m), v2 = clones(v);
  const auto s = kernels::adam_scalars({1e-3f, 0.9f, 0.999f, 1e-8f, 0.02f}, 5);
  std::vector<kernels::AdamSlot> slots;
  for (std::size_t i = 0; i < shapes.size(); ++i) slots.push_back({p[i], g[i], m[i], v[i]});
  kernels::adam_update_multi(slots, s);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    kernels::adam_update(p2[i], g[i], m2[i], v2[i], s);
    expect_bitwise("param " + std::to_string(i), p[i], p2[i]);
    expect_bitwise("m " + std::to_string(i), m[i], m2[i]);
    expect_bitwise("v " + std::to_string(i), v[i], v2[i]);
  }
}

TEST_CASE("multi_tensor: the clip-scaled adam equals scaling the gradient, then adam, bitwise", "[multi_tensor][adam]") {
  // The CPU update scales the gradient a chunk at a time into a per-thread buffer (4096 floats):
  // sizes below, at and across chunk and thread boundaries, and one past the parallel threshold.
  DD_TEST_RANDOM(rng);
  const std::vector<Shape> shapes = {{1}, {4095}, {4096}, {4097}, {33, 3, 3, 17}, {70001}, {2, 1}};
  auto p = random_tensors(rng, shapes, 1.0), g = random_tensors(rng, shapes, 1.0);
  auto m = random_tensors(rng, shapes, 0.1), v = random_tensors(rng, shapes, 0.1);
  for (Tensor& t : v) t = kernels::mul(t, t);
  auto p2 = clones(p), m2 = clones(m), v2 = clones(v), g2 = clones(g), g0 = clones(g);
  const auto s = kernels::adam_scalars({1e-3f, 0.9f, 0.999f, 1e-8f, 0.02f}, 7);
  const float coef = 0.3712f;
  std::vector<kernels::AdamSlot> slots, plain;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    slots.push_back({p[i], g[i], m[i], v[i]});
    plain.push_back({p2[i], g2[i], m2[i], v2[i]});
  }
  kernels::adam_update_multi_scaled(slots, s, Tensor::from_vector({1}, {coef}), Tensor());
  kernels::scale_multi_(g2, coef);
  kernels::adam_update_multi(plain, s);
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    expect_bitwise("param " + std::to_string(i), p[i], p2[i]);
    expect_bitwise("m " + std::to_string(i), m[i], m2[i]);
    expect_bitwise("v " + std::to_string(i), v[i], v2[i]);
    expect_bitwise("the gradient is left as it was " + std::to_string(i), g[i], g0[i]);
  }
}

TEST_CASE("multi_tensor: ema lerp matches torch.lerp on both sides of w = 0.5", "[multi_tensor][ema]") {
  DD_TEST_RANDOM(rng);
  const auto shapes = odd_shapes();
  for (float w : {0.0f, 0.001f, 0.25f, 0.5f, 0.9f, 1.0f}) {
    auto shadow = random_tensors(rng, shapes, 1.0), param = random_tensors(rng, shapes, 1.0);
    auto before = clones(shadow);
    kernels::ema_update_multi(shadow, param, w);
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const auto s = before[i].to_vector(), e = param[i].to_vector(), got = shadow[i].to_vector();
      for (std::size_t j = 0; j < s.size(); ++j) {
        // at::lerp: exact at w = 0 and w = 1, split at 0.5; evaluated in float as here.
        const float d = e[j] - s[j];
        const float want = w < 0.5f ? s[j] + w * d : e[j] - d * (1.0f - w);
        INFO("w " << w << " tensor " << i << " element " << j);
        REQUIRE(got[j] == want);
      }
    }
  }
}

TEST_CASE("multi_tensor: sum of squares and scale over a list", "[multi_tensor]") {
  DD_TEST_RANDOM(rng);
  const auto ts = random_tensors(rng, odd_shapes(), 2.0);
  double want = 0.0;
  for (const Tensor& t : ts) want += kernels::sum_squares(t);
  // Same per-tensor chunked sums added in the same order: bitwise equal.
  CHECK(kernels::sum_squares_multi(ts) == want);
  // The squares are exact in double; two double sums of ~45,000 positive terms differ by at most
  // ~2 * 45,000 * 2^-53 relative (first order): 1e-11.
  double serial = 0.0;
  for (const Tensor& t : ts)
    for (float v : t.to_vector()) serial += static_cast<double>(v) * v;
  CHECK(std::fabs(want - serial) <= 1e-11 * serial);
  CHECK(kernels::sum_squares_multi({}) == 0.0);
  // Fixed chunks, each summed by one thread, added in order: the same bits for any thread count.
  const int threads = omp_get_max_threads();
  for (int t : {1, 3}) {
    omp_set_num_threads(t);
    const double got = kernels::sum_squares_multi(ts);
    omp_set_num_threads(threads);
    CHECK(got == want);
  }
  auto scaled = clones(ts);
  kernels::scale_multi_(scaled, 0.37f);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    Tensor ref = ts[i].clone();
    kernels::scale_(ref, 0.37f);
    expect_bitwise("scaled " + std::to_string(i), scaled[i], ref);
  }
}

TEST_CASE("multi_tensor: mismatched lists are refused with the shapes", "[multi_tensor]") {
  std::vector<Tensor> a{Tensor::zeros({3})}, b{Tensor::zeros({4})};
  CHECK_THROWS_WITH(kernels::ema_update_multi(a, b, 0.5f), Catch::Contains("[3]") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(kernels::ema_update_multi(a, {}, 0.5f), Catch::Contains("1 shadows but 0"));
}

// The CUDA launch plan is plain C++ (kernels/cuda/multi_tensor_plan.h): replay it on the host and
// check that every element of every tensor is visited exactly once, whatever the mix of sizes.
#include "kernels/cuda/multi_tensor_plan.h"

TEST_CASE("multi_tensor: the CUDA launch plan covers every element exactly once", "[multi_tensor]") {
  namespace kc = dd::kernels::cuda;
  DD_TEST_RANDOM(rng);
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<int64_t> sizes;
    const int count = trial == 0 ? 1 : rng.uniform_int(1, 120);
    for (int i = 0; i < count; ++i) {
      const int kind = rng.uniform_int(0, 9);
      sizes.push_back(kind == 0 ? 0 : kind < 7 ? rng.uniform_int(1, 3000) : rng.uniform_int(1, 6) * kc::kChunk + rng.uniform_int(-5, 5));
    }
    if (trial == 1) sizes.push_back(kc::kChunk * kc::kMaxBlocks + 1);  // straddles exactly one launch boundary
    std::vector<std::vector<int>> hits(sizes.size());
    std::vector<std::array<float*, 1>> ptrs;
    std::vector<std::vector<float>> storage(sizes.size());
    for (std::size_t t = 0; t < sizes.size(); ++t) {
      hits[t].assign(static_cast<std::size_t>(sizes[t]), 0);
      storage[t].resize(1);
      ptrs.push_back({storage[t].data()});
    }
    int64_t expected_first = 0;
    kc::for_each_table<1>(ptrs, sizes, [&](const kc::Table<1>& tab, int blocks, int64_t first) {
      REQUIRE(blocks > 0);
      REQUIRE(blocks <= kc::kMaxBlocks);
      REQUIRE(first == expected_first);
      expected_first += blocks;
      for (int b = 0; b < blocks; ++b) {
        const int t = tab.tensor_of_block[b];
        REQUIRE(t >= 0);
        REQUIRE(t < kc::kMaxTensors);
        // Which tensor is it? Its pointer is unique.
        std::size_t owner = sizes.size();
        for (std::size_t k = 0; k < ptrs.size(); ++k)
          if (ptrs[k][0] == tab.ptr[0][t]) owner = k;
        REQUIRE(owner < sizes.size());
        REQUIRE(tab.n[t] == sizes[owner]);
        const int64_t lo = int64_t(tab.chunk_of_block[b]) * kc::kChunk, hi = std::min(lo + kc::kChunk, tab.n[t]);
        REQUIRE(lo < hi);
        for (int64_t i = lo; i < hi; ++i) ++hits[owner][static_cast<std::size_t>(i)];
      }
    });
    for (std::size_t t = 0; t < sizes.size(); ++t) {
      const auto bad = std::count_if(hits[t].begin(), hits[t].end(), [](int h) { return h != 1; });
      INFO("trial " << trial << " tensor " << t << " of size " << sizes[t]);
      CHECK(bad == 0);
    }
  }
}
