// The trainer's optimiser settings against their references: the learning-rate schedules against
// diffusers' get_scheduler, decoupled weight decay against torch.optim.AdamW.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/ddpm/lr_schedule.h"
#include "autograd/adam.h"
#include "engine/safetensors.h"
#include "tests/support/compare.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("lr schedules: warm-up then constant, linear or cosine, as diffusers' get_scheduler", "[train][lr]") {
  using ddpm::LrSchedule;
  CHECK(ddpm::lr_multiplier(LrSchedule::Constant, 0, 0, 10) == 1.0);
  CHECK(ddpm::lr_multiplier(LrSchedule::Constant, 0, 4, 10) == 0.0);  // diffusers' first warm-up step
  CHECK(ddpm::lr_multiplier(LrSchedule::Linear, 2, 4, 10) == 0.5);
  CHECK(ddpm::lr_multiplier(LrSchedule::Linear, 10, 4, 10) == 0.0);
  REQUIRE_THROWS_WITH(ddpm::parse_lr_schedule("step"), Catch::Contains("--lr-schedule must be constant, linear or cosine"));
  TempDir dir("lr_schedule");
  for (const char* name : {"constant", "linear", "cosine"}) {
    for (int warmup : {0, 7}) {
      INFO(name << " warm-up " << warmup);
      const int total = 30;
      const std::string out = dir.file(std::string(name) + std::to_string(warmup) + ".json");
      run_reference_script("optim_ref.py", {"lr", name, std::to_string(warmup), std::to_string(total), out});
      const std::vector<double> ref = nlohmann::json::parse(std::ifstream(out)).get<std::vector<double>>();
      REQUIRE(ref.size() == static_cast<std::size_t>(total));
      for (int k = 0; k < total; ++k) {
        INFO("step " << k);
        // The same double expressions as diffusers' lambdas: equal exactly.
        CHECK(ddpm::lr_multiplier(ddpm::parse_lr_schedule(name), k, warmup, total) == ref[static_cast<std::size_t>(k)]);
      }
    }
  }
}

TEST_CASE("adamw: decoupled weight decay matches torch.optim.AdamW step by step", "[adam][torch]") {
  DD_TEST_RANDOM(rng);
  const Shape s{37};
  const std::vector<double> p0 = rng.uniform(37, -1.0, 1.0);
  ag::Var p(from_double(s, p0), true);
  kernels::AdamHyper h{3e-3f, 0.9f, 0.99f, 1e-8f, 0.1f};
  h.decoupled = true;
  ag::Adam adam({p}, h);
  SafeTensorsFile in;
  in.put_f32("p", from_double(s, p0));
  std::vector<std::vector<float>> ours;
  for (int i = 0; i < 3; ++i) {
    const Tensor g = from_double(s, rng.uniform(37, -2.0, 2.0));
    in.put_f32("g" + std::to_string(i), g);
    p.zero_grad();
    p.accumulate_grad(g.clone());
    adam.step();
    ours.push_back(p.value().to_vector());
  }
  in.metadata["config"] = nlohmann::json{{"lr", 3e-3f}, {"weight_decay", 0.1f}, {"betas", {0.9f, 0.99f}}, {"eps", 1e-8f}}.dump();
  TempDir dir("adamw");
  save_safetensors(dir.file("in.safetensors"), in);
  run_torch_script("optim_ref.py", {"adamw", dir.file("in.safetensors"), dir.file("out.safetensors")});
  const SafeTensorsFile ref = load_safetensors(dir.file("out.safetensors"));
  for (int i = 0; i < 3; ++i) {
    // The same float32 operations in torch's order; the scalars are rounded from doubles as torch's
    // are, so a few ulps at most: 1e-6 relative to the largest weight.
    expect_close("AdamW step " + std::to_string(i), Tensor::from_vector(s, ours[static_cast<std::size_t>(i)]),
                 ref.at("p" + std::to_string(i)).to_f32(), 1e-6);
  }
}
