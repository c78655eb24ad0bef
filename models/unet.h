#pragma once
// The U-Net of seed 003 (annotated-diffusion's Unet with WeightStandardizedConv2d and
// PreNorm = GroupNorm(1, dim) before each attention). Every parameter carries the seed module's
// state_dict name, so `Unet(**config).load_state_dict(...)` in PyTorch accepts our weights and we
// accept PyTorch's.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/denoiser.h"
#include "models/params.h"

namespace dd::models {

struct UnetConfig {
  int dim = 64;
  int init_dim = 0;  // 0: same as dim (the seed's default(init_dim, dim))
  int out_dim = 0;   // 0: same as channels
  std::vector<int> dim_mults{1, 2, 4, 8};
  int channels = 3;
  bool self_condition = false;
  int resnet_block_groups = 4;
  // Attention / LinearAttention use the seed's defaults (heads 4, dim_head 32).
  int attn_heads = 4;
  int attn_dim_head = 32;

  int resolved_init_dim() const { return init_dim > 0 ? init_dim : dim; }
  int resolved_out_dim() const { return out_dim > 0 ? out_dim : channels; }
  // Throws with the offending field when the seed's module could not be built or run with it.
  void validate() const;
  // Image sides must be divisible by this (one halving per level but the last).
  int size_divisor() const { return 1 << (static_cast<int>(dim_mults.size()) - 1); }

  nlohmann::json to_json() const;
  // Missing keys take the seed's defaults; keys of the wrong type throw naming the key.
  static UnetConfig from_json(const nlohmann::json& j);
};

// The ResNet Block (conv -> GroupNorm -> scale/shift -> SiLU) runs as one fused op
// (ag::conv2d_group_norm_act: on the CPU the statistics come from the conv's epilogue) by
// default; false selects the conv and the three separate ops, kept as the reference the fused
// path is tested against. Process-wide; read at every forward.
void set_fused_norm_act(bool on);
bool fused_norm_act();

// The linear attention blocks keep their to_qkv input, not its 3*heads*dim_head-channel output,
// for the backward, and run the 1x1 conv again there (ag::linear_attention_qkv): the same
// gradients bitwise, for one more 1x1 conv per block and step (the CIFAR-10 preset's CPU step at
// batch 128: 3,222 -> 2,808 MiB of live tensors at its peak). On by default; false keeps qkv
// (ag::conv2d then ag::linear_attention). Process-wide; read at every forward.
void set_recompute_qkv(bool on);
bool recompute_qkv();

class Unet : public Denoiser {
 public:
  // Registers every parameter and initialises it like PyTorch's defaults, from gen.
  Unet(const UnetConfig& cfg, Generator& gen);
  ~Unet() override;

  ag::Var forward(const ag::Var& x, const Tensor& t, const ag::Var& x_self_cond) override;
  bool self_condition() const override { return cfg_.self_condition; }
  int channels() const override { return cfg_.channels; }

  const UnetConfig& config() const { return cfg_; }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }

 private:
  struct Impl;
  UnetConfig cfg_;
  ParamSet params_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dd::models
