// Training's timestep draw and lookups (kernels/timesteps.h) on the CPU: the same numbers as
// Generator::uniform_int from the same blocks, the schedule's extract() values, and clear errors.
#include <catch2/catch.hpp>

#include "engine/rng.h"
#include "kernels/timesteps.h"
#include "models/schedule.h"

using namespace dd;

TEST_CASE("timesteps: the draw is Generator::uniform_int's, the gather is extract's", "[diffusion][timesteps]") {
  for (int64_t T : {1, 7, 1000}) {
    Generator gen(0x5eed + static_cast<uint64_t>(T), 11), replay = gen;
    const int64_t B = 37;
    const Tensor t = kernels::draw_timesteps(B, T, gen.seed(), gen.skip(B), Device::CPU);
    std::vector<int64_t> want;
    for (int64_t b = 0; b < B; ++b) want.push_back(static_cast<int64_t>(replay.uniform_int(static_cast<uint64_t>(T))));
    CHECK(gen.offset() == replay.offset());
    const std::vector<float> got = t.to_vector();
    for (int64_t b = 0; b < B; ++b) CHECK(got[static_cast<std::size_t>(b)] == static_cast<float>(want[static_cast<std::size_t>(b)]));

    const models::Schedule s = models::Schedule::make(models::BetaSchedule::Cosine, static_cast<int>(T));
    std::vector<int64_t> all;
    for (int64_t i = 0; i < T; ++i) all.push_back(i);
    const Tensor table = s.extract(s.sqrt_one_minus_alphas_cumprod, all);
    CHECK(kernels::gather_timesteps(table, t).to_vector() == s.extract(s.sqrt_one_minus_alphas_cumprod, want).to_vector());
  }
}

TEST_CASE("timesteps: bad sizes and timesteps are named", "[diffusion][timesteps]") {
  CHECK_THROWS_WITH(kernels::draw_timesteps(0, 10, 1, 0, Device::CPU), Catch::Contains("batch size 0"));
  CHECK_THROWS_WITH(kernels::draw_timesteps(2, 0, 1, 0, Device::CPU), Catch::Contains("T = 0"));
  const Tensor table = Tensor::from_vector({3}, {1, 2, 3});
  CHECK_THROWS_WITH(kernels::gather_timesteps(table, Tensor::from_vector({2}, {1, 3})),
                    Catch::Contains("t[1] = 3 is not an integer in [0, 3)"));
  CHECK_THROWS_WITH(kernels::gather_timesteps(table, Tensor::from_vector({1}, {0.5f})), Catch::Contains("t[0] = 0.5"));
  CHECK_THROWS_WITH(kernels::gather_timesteps(Tensor::zeros({2, 2}), Tensor::from_vector({1}, {0})),
                    Catch::Contains("must be a non-empty [T] tensor"));
}
