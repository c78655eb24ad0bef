// The U-Net's structure: parameter names and shapes are exactly the seed module's state_dict,
// the config is validated with errors naming the field, and the forward checks its inputs.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "models/unet.h"
#include "tests/support/compare.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::models;

namespace {

Shape torch_shape(const Parameter& p) {
  const Shape& s = p.var.shape();
  return p.kind == ParamKind::ConvWeight ? Shape{s[0], s[3], s[1], s[2]} : s;
}

void check_names(const UnetConfig& cfg) {
  Generator gen(1);
  Unet model(cfg, gen);
  const std::string out = test::run_torch_script("unet_keys.py", {cfg.to_json().dump()});
  const auto keys = nlohmann::json::parse(out.substr(out.find('{')));
  REQUIRE(keys.size() == model.params().all().size());
  for (const auto& p : model.params().all()) {
    INFO(p.name);
    REQUIRE(keys.contains(p.name));
    CHECK(keys[p.name].get<std::vector<int64_t>>() == torch_shape(p));
  }
}

}  // namespace

TEST_CASE("U-Net parameters carry the seed module's state_dict names and shapes", "[unet][torch]") {
  SECTION("the seed's defaults (dim 64, dim_mults 1,2,4,8, RGB): 35.7M parameters") {
    UnetConfig cfg;
    check_names(cfg);
    Generator gen(1);
    Unet model(cfg, gen);
    // The figure for the CIFAR-10 preset.
    CHECK(model.params().numel() > 35'650'000);
    CHECK(model.params().numel() < 35'750'000);
  }
  SECTION("self-conditioning, 1 channel, out_dim 2, dim_mults (1,2,3), groups 3") {
    UnetConfig cfg;
    cfg.dim = 6;
    cfg.dim_mults = {1, 2, 3};
    cfg.channels = 1;
    cfg.out_dim = 2;
    cfg.self_condition = true;
    cfg.resnet_block_groups = 3;
    check_names(cfg);
  }
}

TEST_CASE("U-Net config: JSON round trip, defaults and errors naming the field", "[unet]") {
  UnetConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2, 4};
  cfg.channels = 1;
  cfg.self_condition = true;
  const UnetConfig back = UnetConfig::from_json(cfg.to_json());
  CHECK(back.to_json() == cfg.to_json());
  const UnetConfig defaults = UnetConfig::from_json(nlohmann::json::object());
  CHECK(defaults.dim == 64);
  CHECK(defaults.dim_mults == std::vector<int>{1, 2, 4, 8});
  CHECK(defaults.channels == 3);
  CHECK(defaults.resnet_block_groups == 4);
  CHECK_FALSE(defaults.self_condition);
  REQUIRE_THROWS_WITH(UnetConfig::from_json({{"dim", "big"}}), Catch::Contains("'dim' must be an integer"));
  REQUIRE_THROWS_WITH(UnetConfig::from_json({{"dim_mults", {1, "x"}}}), Catch::Contains("dim_mults"));
  REQUIRE_THROWS_WITH(UnetConfig::from_json({{"dim", 10}, {"resnet_block_groups", 4}}),
                      Catch::Contains("not divisible by resnet_block_groups 4"));
  REQUIRE_THROWS_WITH(UnetConfig::from_json({{"dim", 16}, {"init_dim", 8}}), Catch::Contains("init_dim"));
}

TEST_CASE("U-Net forward: output shape, and input errors name the shapes", "[unet]") {
  UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 3;
  cfg.out_dim = 5;
  Generator gen(3);
  Unet model(cfg, gen);
  ag::NoGrad ng;
  ag::Var x(randn({2, 6, 6, 3}, 7, 0));
  Tensor t = Tensor::from_vector({2}, {0.f, 999.f});
  CHECK(model.forward(x, t, ag::Var()).shape() == Shape{2, 6, 6, 5});
  REQUIRE_THROWS_WITH(model.forward(ag::Var(randn({2, 6, 6, 2}, 7, 0)), t, ag::Var()),
                      Catch::Contains("[2,6,6,2]"));
  REQUIRE_THROWS_WITH(model.forward(ag::Var(randn({2, 5, 5, 3}, 7, 0)), t, ag::Var()),
                      Catch::Contains("not divisible by 2"));
  REQUIRE_THROWS_WITH(model.forward(x, Tensor::from_vector({1}, {3.f}), ag::Var()), Catch::Contains("t must be [2]"));
}
