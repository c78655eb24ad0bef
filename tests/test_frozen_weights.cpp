// models/frozen_weights.h: the samplers' cache of standardised conv weights.
#include <catch2/catch.hpp>

#include "autograd/var.h"
#include "engine/rng.h"
#include "kernels/elementwise.h"
#include "kernels/op_profile.h"
#include "models/diffusion.h"
#include "models/frozen_weights.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::models;
namespace prof = dd::kernels::op_profile;

namespace {
UnetConfig small() {
  UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 3;
  return cfg;
}

int64_t standardisations() {
  for (const prof::Entry& e : prof::snapshot())
    if (e.op == "weight_standardize_forward") return e.calls;
  return 0;
}

std::vector<float> forward(Unet& model, const Tensor& x, const Tensor& t) {
  return model.forward(ag::Var(x), t, ag::Var()).value().to_vector();
}
}  // namespace

TEST_CASE("frozen weights: inside a scope the U-Net standardises each weight once, bitwise as without",
          "[frozen_weights][unet]") {
  DD_TEST_RANDOM(rng);
  Generator gen(3);
  Unet model(small(), gen);
  const Tensor x = test::from_double({2, 8, 8, 3}, rng.normal(2 * 8 * 8 * 3));
  const Tensor t = Tensor::from_vector({2}, {3.0f, 17.0f});
  prof::reset();
  prof::enable(true);
  {
    ag::NoGrad no_grad;
    const std::vector<float> plain = forward(model, x, t);
    const int64_t per_forward = standardisations();
    REQUIRE(per_forward > 0);
    prof::reset();
    {
      const FrozenWeights scope;
      CHECK(weights_frozen());
      CHECK(forward(model, x, t) == plain);
      CHECK(standardisations() == per_forward);  // the first call computes them
      {
        const FrozenWeights nested;
        CHECK(forward(model, x, t) == plain);
      }
      CHECK(forward(model, x, t) == plain);
      CHECK(standardisations() == per_forward);  // later calls, in nested scopes too, reuse them
    }
    CHECK_FALSE(weights_frozen());

    // Closed: a changed weight is seen again.
    for (auto& p : model.params().all())
      if (p.kind == ParamKind::ConvWeight) {
        Tensor w = p.var.value();
        std::vector<float> v = w.to_vector();
        for (std::size_t i = 0; i < v.size(); i += 3) v[i] = -v[i];
        w.copy_from(Tensor::from_vector(w.shape(), v));
        break;
      }
    prof::reset();
    CHECK(forward(model, x, t) != plain);
    CHECK(standardisations() == per_forward);
  }
  // With gradients on, nothing is cached even inside a scope.
  prof::reset();
  {
    const FrozenWeights scope;
    const int64_t before = standardisations();
    (void)forward(model, x, t);
    const int64_t one = standardisations() - before;
    (void)forward(model, x, t);
    CHECK(one > 0);
    CHECK(standardisations() == before + 2 * one);
  }
  ag::Tape::current().clear();
  prof::enable(false);
}
