#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/var.h"
#include "engine/error.h"
#include "models/ema.h"

using namespace dd;
using models::Ema;
using models::EmaConfig;

namespace {
void set(const ag::Var& v, const std::vector<float>& values) {
  Tensor t = v.value();  // shares storage with the parameter
  t.copy_from(Tensor::from_vector(t.shape(), values));
}
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}
// Parameter values at step k: small integers and halves, so every lerp with a
// dyadic weight is exact in float32 and the expected values are exact.
void set_step(const ag::Var& a, const ag::Var& b, int k) {
  set(a, {4.0f * k, -8.0f * k, 2.0f * k + 1});
  set(b, {1.0f * k, 0.5f, -2.0f * k, 3.0f});
}
}  // namespace

TEST_CASE("ema defaults are lucidrains' trainer settings", "[ema]") {
  const EmaConfig c;
  CHECK(c.decay == 0.995);
  CHECK(c.update_every == 10);
  CHECK(c.update_after_step == 100);
  CHECK_FALSE(c.warmup);
}

TEST_CASE("ema follows a hand-computed sequence: update_every and update_after_step", "[ema]") {
  ag::Var a(Tensor::zeros({3}), true), b(Tensor::zeros({2, 2}), true);
  set_step(a, b, 0);
  EmaConfig cfg;
  cfg.decay = 0.75;  // weight 1/4: exact
  cfg.update_every = 2;
  cfg.update_after_step = 4;
  Ema ema({a, b}, cfg);
  // The shadow starts as a copy (ema-pytorch deep-copies the model).
  CHECK(ema.shadow()[0].to_vector() == std::vector<float>{0, 0, 1});

  // Steps 0, 2, 4 (<= update_after_step, multiples of 2) copy; odd steps do nothing;
  // step 6 is the first average and starts from a copy (ema-pytorch's initted);
  // steps 8 and 10 average with weight 1/4.
  const std::vector<std::vector<float>> expect_a = {
      {0, 0, 1},           // 0: copy of p0
      {0, 0, 1},           // 1: skipped
      {8, -16, 5},         // 2: copy of p2
      {8, -16, 5},         // 3
      {16, -32, 9},        // 4: copy of p4
      {16, -32, 9},        // 5
      {24, -48, 13},       // 6: copy, then lerp onto the same values
      {24, -48, 13},       // 7
      {26, -52, 14},       // 8: s + (p8 - s)/4, p8 = {32, -64, 17}
      {26, -52, 14},       // 9
      {29.5, -59, 15.75},  // 10: p10 = {40, -80, 21}
  };
  const std::vector<float> expect_b10 = {
      // b: p6 = {6, .5, -12, 3}, p8 = {8, .5, -16, 3}, p10 = {10, .5, -20, 3}
      // s8 = {6.5, .5, -13, 3}, s10 = s8 + (p10 - s8)/4
      7.375f, 0.5f, -14.75f, 3.0f};
  for (int k = 0; k <= 10; ++k) {
    INFO("step " << k);
    set_step(a, b, k);
    ema.update(k);
    CHECK(ema.shadow()[0].to_vector() == expect_a[static_cast<std::size_t>(k)]);
  }
  CHECK(ema.shadow()[1].to_vector() == expect_b10);
  const models::EmaState st = ema.state();
  CHECK(st.last_step == 10);
  CHECK(st.averaged == 3);
  CHECK(st.initted);

  REQUIRE_THROWS_WITH(ema.update(10), Catch::Contains("step 10") && Catch::Contains("must increase"));
  REQUIRE_THROWS_WITH(ema.update(-1), Catch::Contains(">= 0"));
  // Skipping steps is allowed (the next multiple still updates).
  set_step(a, b, 20);
  ema.update(20);
  CHECK(ema.shadow()[0].to_vector() ==
        std::vector<float>{29.5f + (80 - 29.5f) / 4, -59 + (-160 + 59) / 4.0f, 15.75f + (41 - 15.75f) / 4});
}

TEST_CASE("ema with the default decay matches float32 lerp arithmetic", "[ema]") {
  ag::Var a(Tensor::zeros({5}), true);
  Ema ema({a});  // 0.995, every 10, after 100
  std::vector<float> s(5);
  const float w = static_cast<float>(1.0 - 0.995);
  for (int k = 0; k <= 130; ++k) {
    std::vector<float> p = {0.1f * k, -0.3f * k, 1.0f, std::sin(0.1f * k), 7.0f - 0.01f * k};
    set(a, p);
    ema.update(k);
    if (k % 10 != 0) continue;
    if (k <= 110) {
      s = p;  // copies up to 100; the first average at 110 starts from a copy
    } else {
      for (int i = 0; i < 5; ++i) s[i] = s[i] + w * (p[i] - s[i]);
    }
    // The kernel may fuse the multiply-add: agreement to an ulp of the values.
    const std::vector<float> got = ema.shadow()[0].to_vector();
    for (int i = 0; i < 5; ++i) {
      INFO("step " << k << " element " << i);
      CHECK(std::fabs(got[i] - s[i]) <= 2e-7f * std::max(1.0f, std::fabs(s[i])));
    }
  }
  CHECK(ema.state().averaged == 3);  // 110, 120, 130
}

TEST_CASE("ema warmup follows ema-pytorch's decay curve", "[ema]") {
  ag::Var a(Tensor::zeros({2}), true);
  EmaConfig cfg;
  cfg.warmup = true;
  cfg.update_every = 1;
  cfg.update_after_step = 4;
  Ema ema({a}, cfg);
  CHECK(ema.decay_at(5) == 0.0);  // n = 0
  CHECK(ema.decay_at(6) == Approx(1.0 - std::pow(2.0, -2.0 / 3.0)).epsilon(1e-15));
  CHECK(ema.decay_at(1000000) == 0.995);  // clamped at decay
  for (int k = 0; k <= 4; ++k) ema.update(k);
  // Decay 0 means weight 1: the shadow becomes the parameter exactly.
  set(a, {0.123f, -4.56f});
  ema.update(5);
  CHECK(bitwise_equal(ema.shadow()[0], a.value()));
  // Weight 1 - 0.37 > 1/2 takes torch's second lerp branch: end - (1 - w)(end - start).
  const std::vector<float> start = ema.shadow()[0].to_vector();
  set(a, {1.0f, 2.0f});
  ema.update(6);
  const double wd = static_cast<float>(1.0 - ema.decay_at(6));
  const std::vector<float> got = ema.shadow()[0].to_vector();
  for (int i = 0; i < 2; ++i) {
    const double end = i == 0 ? 1.0 : 2.0;
    CHECK(got[i] == Approx(start[i] + wd * (end - start[i])).epsilon(1e-6));
  }
}

TEST_CASE("ema copy_to and swap move contents and keep storage", "[ema]") {
  ag::Var a(Tensor::from_vector({2}, {1, 2}), true);
  Ema ema({a});
  set(a, {5, 6});  // the shadow still holds {1, 2}
  ag::Var other(Tensor::zeros({2}), true);
  ema.copy_to({other});
  CHECK(other.value().to_vector() == std::vector<float>{1, 2});

  const Tensor storage = a.value();
  ema.swap();
  CHECK(a.value().same_storage(storage));
  CHECK(a.value().to_vector() == std::vector<float>{1, 2});
  CHECK(ema.shadow()[0].to_vector() == std::vector<float>{5, 6});
  ema.swap();
  CHECK(a.value().to_vector() == std::vector<float>{5, 6});
  CHECK(ema.shadow()[0].to_vector() == std::vector<float>{1, 2});

  REQUIRE_THROWS_WITH(ema.copy_to({}), Catch::Contains("0 parameters given"));
  REQUIRE_THROWS_WITH(ema.copy_to({ag::Var(Tensor::zeros({3}), true)}),
                      Catch::Contains("[3]") && Catch::Contains("[2]"));
}

TEST_CASE("ema state round trip resumes bitwise", "[ema]") {
  ag::Var a(Tensor::zeros({3}), true), b(Tensor::zeros({2, 2}), true);
  EmaConfig cfg;
  cfg.update_every = 3;
  cfg.update_after_step = 3;
  cfg.decay = 0.9;
  Ema ema({a, b}, cfg);
  for (int k = 0; k <= 9; ++k) {
    set(a, {0.1f * k, std::cos(0.3f * k), -1.7f});
    set(b, {0.2f * k, 0.5f, std::sin(1.1f * k), -0.01f * k});
    ema.update(k);
  }
  const models::EmaState saved = ema.state();
  ag::Var a2(Tensor::zeros({3}), true), b2(Tensor::zeros({2, 2}), true);
  Ema resumed({a2, b2}, cfg);
  resumed.load_state(saved);
  for (int k = 10; k <= 16; ++k) {
    for (const auto& [x, y] : {std::pair<ag::Var, ag::Var>{a, b}, {a2, b2}}) {
      set(x, {0.1f * k, std::cos(0.3f * k), -1.7f});
      set(y, {0.2f * k, 0.5f, std::sin(1.1f * k), -0.01f * k});
    }
    ema.update(k);
    resumed.update(k);
  }
  CHECK(bitwise_equal(ema.shadow()[0], resumed.shadow()[0]));
  CHECK(bitwise_equal(ema.shadow()[1], resumed.shadow()[1]));
  CHECK(ema.state().averaged == resumed.state().averaged);
  CHECK(ema.state().last_step == 16);
  // state() is a deep copy: later updates do not change it.
  CHECK_FALSE(bitwise_equal(saved.shadow[0], ema.shadow()[0]));
  // The step counter came back too: a repeated step is refused.
  REQUIRE_THROWS_WITH(resumed.update(16), Catch::Contains("must increase"));

  models::EmaState bad = saved;
  bad.shadow.pop_back();
  REQUIRE_THROWS_WITH(resumed.load_state(bad),
                      Catch::Contains("1 shadow tensors given") && Catch::Contains("2"));
  bad = saved;
  bad.shadow[1] = Tensor::zeros({4});
  REQUIRE_THROWS_WITH(resumed.load_state(bad), Catch::Contains("shadow 1") && Catch::Contains("[4]"));
}

TEST_CASE("ema rejects bad configurations", "[ema]") {
  ag::Var a(Tensor::zeros({2}), true);
  REQUIRE_THROWS_WITH(Ema({}), Catch::Contains("no parameters"));
  EmaConfig c;
  c.decay = 1.5;
  REQUIRE_THROWS_WITH(Ema({a}, c), Catch::Contains("decay 1.5"));
  c = EmaConfig{};
  c.update_every = 0;
  REQUIRE_THROWS_WITH(Ema({a}, c), Catch::Contains("update_every 0"));
  c = EmaConfig{};
  c.update_after_step = -1;
  REQUIRE_THROWS_WITH(Ema({a}, c), Catch::Contains("update_after_step -1"));
  REQUIRE_THROWS_WITH(Ema({ag::Var()}), Catch::Contains("parameter 0 is undefined"));
}
