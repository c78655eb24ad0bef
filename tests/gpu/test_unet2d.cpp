// diffusers' UNet2DModel (models/unet2d.h) on the GPU against the CPU backend: the same weights,
// input and timesteps; forward, and the gradients of sum(out * g) wrt the input and every
// parameter; at google/ddpm-cifar10-32's config (the strided conv, GroupNorm(32, eps 1e-6), one
// attention head of 256 channels at 16x16) and with dropout drawing the same masks on both devices.
#include <catch2/catch.hpp>

#include "autograd/elementwise.h"
#include "engine/rng.h"
#include "models/unet2d.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
void check_devices(const models::Unet2DConfig& cfg, int64_t batch, int64_t size, bool dropout) {
  DD_TEST_RANDOM(rng);
  Generator init_c(5), init_g(5);
  models::Unet2D cpu_model(cfg, init_c), gpu_model(cfg, init_g);
  gpu_model.params().to(Device::CUDA);
  Generator drop_c(77), drop_g(77);
  if (dropout) {
    cpu_model.set_dropout_generator(&drop_c);
    gpu_model.set_dropout_generator(&drop_g);
  }
  Tensor x = from_double({batch, size, size, cfg.in_channels}, rng.normal_f32(batch * size * size * cfg.in_channels));
  Tensor g = from_double({batch, size, size, cfg.out_channels}, rng.normal_f32(batch * size * size * cfg.out_channels));
  std::vector<float> tv(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) tv[static_cast<size_t>(b)] = b == 0 ? 999.0f : float(rng.uniform_int(0, 999));
  ag::Var xc(x, true), xg(x.to(Device::CUDA), true);
  ag::Var yc = cpu_model.forward(xc, Tensor::from_vector({batch}, tv), ag::Var());
  ag::Tape::current().backward(ag::sum(ag::mul(yc, ag::Var(g))));
  ag::Tape::current().clear();
  ag::Var yg = gpu_model.forward(xg, Tensor::from_vector({batch}, tv, Device::CUDA), ag::Var());
  ag::Tape::current().backward(ag::sum(ag::mul(yg, ag::Var(g.to(Device::CUDA)))));
  ag::Tape::current().clear();
  CHECK(drop_c.offset() == drop_g.offset());
  // fp32 through ~60 layers, sums in other orders: 1e-4 on the output, 1e-3 on gradients (as the
  // seed U-Net's GPU training-step test allows for deep sums).
  expect_close("out", yg.value().to(Device::CPU), yc.value(), 1e-4);
  expect_close("grad_x", xg.grad().to(Device::CPU), xc.grad(), 1e-3);
  const auto& pc = cpu_model.params().all();
  const auto& pg = gpu_model.params().all();
  for (size_t i = 0; i < pc.size(); ++i) {
    if (pc[i].name.find("to_k.bias") != std::string::npos) continue;  // zero up to rounding (tests/test_unet2d.cpp)
    expect_close("grad." + pc[i].name, pg[i].var.grad().to(Device::CPU), pc[i].var.grad(), 1e-3);
  }
}
}  // namespace

TEST_CASE("gpu: UNet2DModel at google/ddpm-cifar10-32's config matches the cpu", "[gpu][unet2d]") {
  check_devices(models::Unet2DConfig::ddpm_cifar10(), 2, 32, false);
}

TEST_CASE("gpu: UNet2DModel with dropout draws the cpu's masks", "[gpu][unet2d]") {
  models::Unet2DConfig c;
  c.block_out_channels = {32, 64};
  c.down_block_types = {"AttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "AttnUpBlock2D"};
  c.layers_per_block = 1;
  c.norm_num_groups = 8;
  c.attention_head_dim = 16;
  c.downsample_padding = 0;
  c.dropout = 0.3;
  check_devices(c, 3, 8, true);
}
