// The NCCL path of data-parallel GPU training with world size 1 (apps/dist/nccl_comm.h,
// apps/ddpm/grad_sync.h): the bootstrap (ncclGetUniqueId, the id through the host communicator,
// ncclCommInitRankConfig with one rank), the collectives on a random device tensor, and training
// steps with the communicator in the loop, plain and bucketed over the backward, against the same
// steps without it. One rank sums nothing, so every result must equal the input bit for bit.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <memory>

#include "apps/ddpm/grad_sync.h"
#include "apps/ddpm/train_step.h"
#include "apps/dist/comm.h"
#include "apps/dist/nccl_comm.h"
#include "autograd/adam.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {

models::UnetConfig nccl_config() {
  models::UnetConfig c;
  c.dim = 8;
  c.dim_mults = {1, 2};
  c.channels = 3;
  c.resnet_block_groups = 4;
  c.attn_heads = 2;
  c.attn_dim_head = 16;
  return c;
}

struct NcclRig {
  Generator init{4321};
  models::Unet model;
  std::unique_ptr<ag::Adam> adam;
  Generator gen{99};
  std::unique_ptr<ddpm::TrainStep> step;
  Tensor grads;
  explicit NcclRig(const models::GaussianDiffusion& diffusion) : model(nccl_config(), init) {
    model.params().to(Device::CUDA);
    model.params().zero_grad();
    adam = std::make_unique<ag::Adam>(model.params().vars(), kernels::AdamHyper{2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f},
                                      model.params().param_arena(), model.params().grad_arena());
    step = std::make_unique<ddpm::TrainStep>(
        ddpm::TrainStepParts{&model, &model.params(), &diffusion, &gen, adam.get(), 1.0}, Device::CUDA, false);
    grads = model.params().grad_arena();
  }
};

// The float bits, so -0 and +0 differ.
std::vector<uint32_t> bits(const Tensor& t) {
  const std::vector<float> f = t.to_vector();
  std::vector<uint32_t> b(f.size());
  std::memcpy(b.data(), f.data(), sizeof(float) * f.size());
  return b;
}

}  // namespace

TEST_CASE("gpu nccl: one rank through the whole NCCL path equals the steps without it", "[gpu][nccl]") {
  if (!dist::nccl_built()) {
    WARN("this build has no NCCL: nothing to check");
    return;
  }
  const dist::Comm single;
  dist::NcclComm nccl(single, 60.0);
  REQUIRE(nccl.world_size() == 1);

  // The collectives on a random device tensor: a mean over one rank, and a broadcast from it, are
  // the input's bits (odd size; negative zeros and subnormals included).
  DD_TEST_RANDOM(rng);
  std::vector<double> v = rng.uniform(100003, -1.0, 1.0);
  v[0] = -0.0;
  v[1] = 1e-40;
  const Tensor host = from_double({static_cast<int64_t>(v.size())}, v);
  Tensor t = host.to(Device::CUDA);
  nccl.allreduce_mean(t);
  CHECK(bits(t) == bits(host));
  nccl.broadcast_from_root(t);
  CHECK(bits(t) == bits(host));
  nccl.start_sum(t, 5, 70001);
  nccl.start_sum(t, 70001, t.numel());
  nccl.finish_sums(t);
  CHECK(bits(t) == bits(host));

  // Training steps: without a communicator, with one all-reduce after the backward, and with
  // buckets (small ones, so there are many) sent during the backward.
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Cosine, 100),
                                            kernels::LossType::Huber);
  NcclRig plain(diffusion), whole(diffusion), bucketed(diffusion);
  whole.step->set_data_parallel(0, 1, [&] { nccl.allreduce_mean(whole.grads); });
  ddpm::OverlappedGradSync sync(nccl, bucketed.model.params(), 2000);
  REQUIRE(sync.buckets().size() > 3);
  bucketed.step->set_data_parallel(0, 1, [&] { sync.finish(); }, [&] { sync.arm(); });
  Random data(17);
  for (int i = 0; i < 4; ++i) {
    INFO("step " << i);
    const Tensor x = from_double({4, 16, 16, 3}, data.uniform(4 * 16 * 16 * 3, -1.0, 1.0));
    const float lp = plain.step->run(x).item();
    CHECK(whole.step->run(x).item() == lp);
    CHECK(bucketed.step->run(x).item() == lp);
    const std::vector<uint32_t> want = bits(plain.model.params().param_arena());
    REQUIRE(bits(whole.model.params().param_arena()) == want);
    REQUIRE(bits(bucketed.model.params().param_arena()) == want);
  }
  CHECK(sync.traces() == 1);            // the first backward is traced
  CHECK(sync.overlapped_steps() == 3);  // the later ones send their buckets during the backward
}
