// CUDA graphs and the device-resident step (issue 11): a step makes no host synchronisation and no
// device-to-host copy; replayed steps equal eager steps bit for bit (with and without
// self-conditioning); a replay allocates nothing; a capture refuses host traffic; a private pool's
// blocks are not handed to eager work.
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "apps/ddpm/sampler.h"
#include "apps/ddpm/train_step.h"
#include "autograd/adam.h"
#include "engine/context.h"
#include "engine/cuda_graph.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {

models::UnetConfig graph_config(bool self_condition) {
  models::UnetConfig c;
  c.dim = 8;
  c.dim_mults = {1, 2, 2};  // linear attention at each level, full attention in the middle
  c.channels = 3;
  c.resnet_block_groups = 4;
  c.attn_heads = 2;
  c.attn_dim_head = 16;
  c.self_condition = self_condition;
  return c;
}

// A model, its optimizer and generator on the GPU, stepped by ddpm::TrainStep.
struct GraphRig {
  Generator init{4321};
  models::Unet model;
  std::unique_ptr<ag::Adam> adam;
  Generator gen{99};
  std::unique_ptr<ddpm::TrainStep> step;
  GraphRig(bool self_condition, const models::GaussianDiffusion& diffusion, bool graphs)
      : model(graph_config(self_condition), init) {
    model.params().to(Device::CUDA);
    model.params().zero_grad();
    adam = std::make_unique<ag::Adam>(model.params().vars(), kernels::AdamHyper{2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f},
                                      model.params().param_arena(), model.params().grad_arena());
    step = std::make_unique<ddpm::TrainStep>(ddpm::TrainStepParts{&model, &model.params(), &diffusion, &gen, adam.get(), 1.0},
                                             Device::CUDA, graphs);
  }
};

models::GaussianDiffusion make_diffusion() {
  return models::GaussianDiffusion(models::Schedule::make(models::BetaSchedule::Cosine, 100), kernels::LossType::Huber);
}

std::vector<Tensor> batches(int n, uint64_t seed) {
  Random rng(seed);
  std::vector<Tensor> out;
  for (int i = 0; i < n; ++i) out.push_back(from_double({4, 16, 16, 3}, rng.uniform(4 * 16 * 16 * 3, -1.0, 1.0)));
  return out;
}

}  // namespace

TEST_CASE("gpu graphs: replayed training steps equal eager steps bitwise", "[gpu][graphs]") {
  for (bool self_condition : {false, true}) {
    INFO("self_condition " << self_condition);
    const models::GaussianDiffusion diffusion = make_diffusion();
    GraphRig eager(self_condition, diffusion, false), graph(self_condition, diffusion, true);
    const std::vector<Tensor> xs = batches(8, 17);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      INFO("step " << i);
      const float le = eager.step->run(xs[i]).item();
      const float lg = graph.step->run(xs[i]).item();
      CHECK(lg == le);  // the same kernels with the same inputs: bitwise
      REQUIRE(graph.model.params().param_arena().to_vector() == eager.model.params().param_arena().to_vector());
      CHECK(graph.gen.offset() == eager.gen.offset());
      CHECK(graph.adam->param_steps() == eager.adam->param_steps());
    }
    CHECK(graph.step->captures() >= 1);
    CHECK(graph.step->replays() == static_cast<int64_t>(xs.size()) - 1);  // the first step is the eager warm-up
  }
}

TEST_CASE("gpu graphs: a step makes no host sync and no read-back, a replay allocates and launches nothing more",
          "[gpu][graphs]") {
  const models::GaussianDiffusion diffusion = make_diffusion();
  GraphRig eager(false, diffusion, false), graph(false, diffusion, true);
  const std::vector<Tensor> xs = batches(4, 5);
  eager.step->run(xs[0]);
  graph.step->run(xs[0]);
  graph.step->run(xs[1]);  // captured here
  cuda_mem::synchronize();
  {
    const cuda_mem::Stats s0 = cuda_mem::stats();
    eager.step->run(xs[2]);
    const cuda_mem::Stats s1 = cuda_mem::stats();
    CHECK(s1.host_syncs == s0.host_syncs);
    CHECK(s1.d2h_copies == s0.d2h_copies);
    CHECK(s1.h2d_pageable == s0.h2d_pageable);
    INFO("eager launches per step " << (s1.launches - s0.launches));
    CHECK(s1.launches - s0.launches > 50);
  }
  {
    const cuda_mem::Stats s0 = cuda_mem::stats();
    graph.step->run(xs[3]);
    const cuda_mem::Stats s1 = cuda_mem::stats();
    CHECK(s1.host_syncs == s0.host_syncs);
    CHECK(s1.d2h_copies == s0.d2h_copies);
    CHECK(s1.device_mallocs == s0.device_mallocs);  // no cudaMalloc during a replay
    CHECK(s1.launches - s0.launches == 2);           // the counter and Adam's scalars; the graph is one launch
    CHECK(s1.h2d_staged - s0.h2d_staged == 1);       // the batch, through pinned staging
  }
  CHECK(graph.step->graph_nodes() > 50);
}

TEST_CASE("gpu graphs: a capture refuses host traffic and leaves the stream usable", "[gpu][graphs]") {
  CudaGraph g;
  const std::vector<float> host{1.0f, 2.0f, 3.0f};
  REQUIRE_THROWS_WITH(g.capture([&] { (void)Tensor::from_vector({3}, host, Device::CUDA); }),
                      Catch::Contains("host-to-device copy inside a captured CUDA graph"));
  CHECK_FALSE(g.captured());
  CHECK_FALSE(current_context().capturing());
  const Tensor t = Tensor::full({3}, 5.0f, Device::CUDA);
  CHECK(t.to(Device::CPU).to_vector() == std::vector<float>{5.0f, 5.0f, 5.0f});
}

TEST_CASE("gpu graphs: a captured fill replays into the same buffer, its pool keeps it from eager work",
          "[gpu][graphs]") {
  CudaGraph g;
  Tensor out;
  g.capture([&] { out = Tensor::full({1000}, 3.0f, Device::CUDA); });
  REQUIRE(g.captured());
  g.replay();
  CHECK(out.to(Device::CPU).to_vector() == std::vector<float>(1000, 3.0f));
  const void* addr = out.raw_data();
  out = Tensor();  // freed into the graph's private pool, not the general one
  const Tensor eager = Tensor::empty({1000}, Device::CUDA);
  CHECK(eager.raw_data() != addr);
}

TEST_CASE("gpu graphs: the graphed sampler draws the eager sampler's images bitwise", "[gpu][graphs][sampler]") {
  for (bool self_condition : {false, true}) {
    INFO("self_condition " << self_condition);
    Generator init(8);
    models::Unet model(graph_config(self_condition), init);
    model.params().to(Device::CUDA);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 12),
                                              kernels::LossType::L2);
    Generator ge(3), gg(3);
    std::vector<int> te, tg;
    const Tensor a = diffusion.p_sample_loop(model, {3, 16, 16, 3}, ge, [&](int t, const Tensor&) { te.push_back(t); },
                                             Device::CUDA);
    const cuda_mem::Stats s0 = cuda_mem::stats();
    const Tensor b = diffusion.p_sample_loop_graphed(model, {3, 16, 16, 3}, gg,
                                                     [&](int t, const Tensor&) { tg.push_back(t); }, Device::CUDA);
    const cuda_mem::Stats s1 = cuda_mem::stats();
    CHECK(b.to(Device::CPU).to_vector() == a.to(Device::CPU).to_vector());
    CHECK(tg == te);
    CHECK(gg.offset() == ge.offset());
    INFO("launches: eager step ~ (total)/12, graphed " << (s1.launches - s0.launches));
    CHECK(s1.host_syncs == s0.host_syncs);
  }
}

TEST_CASE("gpu graphs: replayed DDIM, DPM-Solver++ and x0-form DDPM chains equal eager batches bitwise",
          "[gpu][graphs][sampler]") {
  Generator init(8);
  models::Unet model(graph_config(true), init);
  model.params().to(Device::CUDA);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 20),
                                            kernels::LossType::L2, models::Objective::PredV);
  for (const char* sampler : {"ddim", "dpmpp", "ddpm"}) {
    INFO(sampler);
    ddpm::SampleRequest req;
    req.n = 7;  // batches 3, 3, 1: the first eager, then a capture for 3 and one for 1, each replayed
    req.batch_size = 3;
    req.image_size = 16;
    req.seed = 4;
    req.show_progress = false;
    req.device = Device::CUDA;
    req.sampler = sampler;
    req.ddim.steps = 6;
    req.ddim.eta = 0.6;  // draws noise in the chain
    req.ddim.thresholding.enabled = true;
    req.dpm.steps = 5;
    req.dpm.karras_sigmas = true;
    req.ddpm.steps = 5;
    req.ddpm.variance_type = models::VarianceType::FixedLarge;
    const ddpm::SampleResult eager = ddpm::sample_images(model, diffusion, req);
    req.cuda_graphs = true;
    const ddpm::SampleResult graphed = ddpm::sample_images(model, diffusion, req);
    CHECK(graphed.images.to_vector() == eager.images.to_vector());
  }
}
