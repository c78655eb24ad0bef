// The U-Net against the seed module in PyTorch (tests/torch/unet_ref.py): the same weights (written
// by us as a safetensors state_dict, loaded there with strict=True), the same inputs; the forward
// output and the gradient of sum(output * g) wrt the input and every parameter must agree with the
// module's float64 evaluation as closely as PyTorch's own float32 evaluation does.
#include <algorithm>

#include <catch2/catch.hpp>

#include "autograd/elementwise.h"
#include "engine/safetensors.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "models/torch_layout.h"
#include "models/weights.h"
#include "tests/support/compare.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;
using namespace dd::models;

namespace {

Tensor random_tensor(Random& rng, const Shape& s, double scale = 1.0) {
  return from_double(s, rng.normal_f32(shape_numel(s), scale));
}

// Ours against the float64 evaluation (the exact values), within the larger of tol and ref_factor
// times PyTorch's own float32 error, both relative to the tensor's largest element. Most tensors
// are far within tol. A few are sums that cancel far below their terms: the bias of a conv feeding a
// GroupNorm, say, whose gradients sum to zero over each group, so what is left is a difference of
// sums much larger than itself. Any float32 evaluation errs there by an ulp of the terms, not of
// the result, and PyTorch's float32 error measures how far (9.5e-5 of the scale, once in ~30 runs).
void expect_close_to_exact(const std::string& what, const Tensor& ours, const SafeTensorsFile& torch_out,
                           const std::string& key, double tol, double ref_factor) {
  const std::vector<double> exact = torch_out.at("f64." + key).to_f64();
  const std::vector<float> ref32 = torch_out.at(key).to_f32().to_vector();
  REQUIRE(ours.numel() == static_cast<int64_t>(exact.size()));
  const CloseReport ref = compare(ref32, exact, tol);
  const CloseReport r = compare(ours.to_vector(), exact, std::max(tol, ref_factor * ref.max_rel));
  INFO(what << " against float64: " << r.message << "; PyTorch's float32 against float64: max relative error "
            << ref.max_rel << " (times " << ref_factor << " is the bound where above tol)");
  CHECK(r.ok);
}

// ref_factor: how far our float32 error may run past PyTorch's on one tensor. Measured over 8 seeds
// per section (2026-11-29): up to 6.6x with im2col convs (whose errors are PyTorch's size: 0.6-0.7x
// its geometric mean), up to 15.6x where the 3x3 convs are Winograd (2.6x its geometric mean: the
// transforms' rounding). The sections take 10 and 25.
void check_parity(const ModelConfig& cfg, int batch, double ref_factor) {
  DD_TEST_RANDOM(rng);
  Generator gen(rng.uniform_int(0, 1 << 30));
  Unet model(cfg.unet, gen);
  // Perturb the GroupNorm affine parameters off their (1, 0) initialisation, so their gradients and
  // their use in the forward are checked with generic values.
  for (const auto& p : model.params().all()) {
    if (p.name.find("norm") != std::string::npos) {
      Tensor v = p.var.value();
      std::vector<double> noise = rng.normal_f32(v.numel(), 0.2);
      std::vector<float> cur = v.to_vector();
      for (size_t i = 0; i < cur.size(); ++i) cur[i] += static_cast<float>(noise[i]);
      v.copy_from(Tensor::from_vector(v.shape(), cur));
    }
  }
  const int S = cfg.diffusion.image_size, C = cfg.unet.channels, Co = cfg.unet.resolved_out_dim();
  Tensor x = random_tensor(rng, {batch, S, S, C});
  Tensor g = random_tensor(rng, {batch, S, S, Co});
  Tensor sc = cfg.unet.self_condition ? random_tensor(rng, {batch, S, S, C}) : Tensor();
  std::vector<int64_t> t_i64(batch);
  std::vector<float> t_f(batch);
  for (int b = 0; b < batch; ++b) {
    // Element 0 gets the largest timestep, where the float32 time embedding is most sensitive.
    t_i64[b] = b == 0 ? cfg.diffusion.timesteps - 1 : rng.uniform_int(0, cfg.diffusion.timesteps - 1);
    t_f[b] = static_cast<float>(t_i64[b]);
  }

  TempDir dir("unet_parity");
  save_weights(dir.file("w.safetensors"), model.params(), cfg);
  SafeTensorsFile in;
  in.put_f32("x", nhwc_to_nchw(x));
  in.put_f32("g", nhwc_to_nchw(g));
  in.put_i64("t", t_i64, {batch});
  if (sc.defined()) in.put_f32("x_self_cond", nhwc_to_nchw(sc));
  save_safetensors(dir.file("in.safetensors"), in);
  run_torch_script("unet_parity.py", {dir.file("w.safetensors"), dir.file("in.safetensors"), dir.file("out.safetensors")});
  SafeTensorsFile torch_out = load_safetensors(dir.file("out.safetensors"));

  ag::Var xv(x, true), scv = sc.defined() ? ag::Var(sc, true) : ag::Var();
  ag::Var out = model.forward(xv, Tensor::from_vector({batch}, t_f), scv);
  ag::Tape::current().backward(ag::sum(ag::mul(out, ag::Var(g))));

  // fp32 through ~40 layers: the bounds (1e-5 for the output, 1e-4 for gradients, whose
  // accumulation orders differ between the engines), relative to each tensor's largest element.
  expect_close_to_exact("model_output", nhwc_to_nchw(out.value()), torch_out, "model_output", 1e-5, ref_factor);
  expect_close_to_exact("grad_x", nhwc_to_nchw(xv.grad()), torch_out, "grad_x", 1e-4, ref_factor);
  if (sc.defined())
    expect_close_to_exact("grad_x_self_cond", nhwc_to_nchw(scv.grad()), torch_out, "grad_x_self_cond", 1e-4,
                          ref_factor);
  const auto sd_names = model.params().state_dict();
  for (const auto& p : model.params().all()) {
    REQUIRE(p.var.has_grad());
    Tensor ours = p.kind == ParamKind::ConvWeight ? ohwi_to_oihw(p.var.grad()) : p.var.grad();
    expect_close_to_exact("grad." + p.name, ours, torch_out, "grad." + p.name, 1e-4, ref_factor);
  }
  // Every PyTorch parameter has a counterpart here (strict loading already proved the converse).
  for (const auto& kv : torch_out.tensors)
    if (kv.first.rfind("grad.", 0) == 0 && kv.first.size() > 5) CHECK(sd_names.count(kv.first.substr(5)) == 1);
  ag::Tape::current().clear();
}

}  // namespace

TEST_CASE("U-Net matches the seed module in PyTorch: forward and every gradient", "[unet][parity][torch]") {
  SECTION("dim 8, dim_mults (1,2), RGB, 8x8") {
    ModelConfig cfg;
    cfg.unet.dim = 8;
    cfg.unet.dim_mults = {1, 2};
    cfg.unet.channels = 3;
    cfg.diffusion.image_size = 8;
    check_parity(cfg, 2, 10.0);
  }
  SECTION("self-conditioning, 1 channel, odd widths: dim 6, dim_mults (1,2,3), groups 3, 12x12, out_dim 3") {
    ModelConfig cfg;
    cfg.unet.dim = 6;
    cfg.unet.dim_mults = {1, 2, 3};
    cfg.unet.channels = 1;
    cfg.unet.out_dim = 3;
    cfg.unet.self_condition = true;
    cfg.unet.resnet_block_groups = 3;
    cfg.diffusion.image_size = 12;
    check_parity(cfg, 3, 10.0);
  }
  SECTION("dim 16, dim_mults (1,2), RGB, 16x16: the CPU's Winograd, F(4x4,3x3) at 16x16, F(2x2,3x3) at 8x8") {
    // The sections above are below the rules' 16 channels: every 3x3 conv there is im2col. Here the
    // rules pick F(4x4) for the 16x16 level's 3x3 convs and F(2x2) for the 8x8 level's (8 F(4x4)
    // tiles at batch 2), in all three directions (checked, so a rule change cannot silently take
    // this section off Winograd).
    CHECK(kernels::cpu::use_winograd(2, 16, 16, 16, 16) == 4);
    CHECK(kernels::cpu::use_winograd(2, 8, 8, 32, 32) == 2);
    CHECK(kernels::cpu::use_winograd_dw(2, 16, 16, 16, 16) == 4);
    CHECK(kernels::cpu::use_winograd_dw(2, 8, 8, 32, 32) == 2);
    ModelConfig cfg;
    cfg.unet.dim = 16;
    cfg.unet.dim_mults = {1, 2};
    cfg.unet.channels = 3;
    cfg.diffusion.image_size = 16;
    check_parity(cfg, 2, 25.0);
  }
}
