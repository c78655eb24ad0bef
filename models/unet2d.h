#pragma once
// diffusers' UNet2DModel (diffusers 0.31.0, models/unets/unet_2d.py) as the second model family:
// the DDPM paper's CIFAR-10 network (google/ddpm-cifar10-32) and any config of the same blocks.
// Configured from diffusers' config.json keys; every parameter carries diffusers' state_dict name
// (conv_in.weight, time_embedding.linear_1.weight, down_blocks.1.attentions.0.to_q.weight, ...), so
// a published diffusion_pytorch_model.safetensors loads with nothing renamed and what we save opens
// in UNet2DModel.from_pretrained. Supported: DownBlock2D / AttnDownBlock2D / UpBlock2D /
// AttnUpBlock2D, positional time embedding, act_fn silu, resnet_time_scale_shift "default",
// conv down/upsamplers, no class embedding; anything else is refused naming the key.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/denoiser.h"
#include "models/params.h"

namespace dd::models {

struct Unet2DConfig {
  int sample_size = 32;  // informational (the forward takes any size divisible by size_divisor())
  int in_channels = 3;
  int out_channels = 3;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0.0;
  std::vector<std::string> down_block_types{"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"};
  std::vector<std::string> up_block_types{"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
  std::vector<int> block_out_channels{224, 448, 672, 896};
  int layers_per_block = 2;
  double mid_block_scale_factor = 1.0;
  int downsample_padding = 1;
  double dropout = 0.0;  // double, as in the JSON (the op takes it as float)
  int attention_head_dim = 8;  // 0: null in the config (one head over all channels)
  int norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool add_attention = true;

  // Heads and head dim of an attention over ch channels (diffusers: ch // attention_head_dim heads).
  int heads_for(int ch) const { return attention_head_dim > 0 ? ch / attention_head_dim : 1; }
  int size_divisor() const { return 1 << (static_cast<int>(block_out_channels.size()) - 1); }
  void validate() const;

  // diffusers' config.json for UNet2DModel (with _class_name), as save_pretrained writes it.
  nlohmann::json to_json() const;
  // Reads diffusers' keys (missing ones take UNet2DModel's defaults); unsupported values and keys
  // of the wrong type throw naming the key and `source`.
  static Unet2DConfig from_json(const nlohmann::json& j, const std::string& source = "config.json");
  // google/ddpm-cifar10-32's published config (35.7M parameters).
  static Unet2DConfig ddpm_cifar10();
  // True when j describes a UNet2DModel (its _class_name, or diffusers' block keys).
  static bool is_unet2d_json(const nlohmann::json& j);
};

// diffusers' checkpoints of these models name the attention projections two ways; renames the
// older one (query / key / value / proj_attn, optionally [C, C, 1, 1] conv-shaped) to the current
// (to_q / to_k / to_v / to_out.0, [C, C]). Other names pass through.
std::map<std::string, Tensor> unet2d_canonical_state_dict(std::map<std::string, Tensor> tensors);

class Unet2D : public Denoiser {
 public:
  // Registers every parameter and initialises it like PyTorch's defaults, from gen.
  Unet2D(const Unet2DConfig& cfg, Generator& gen);
  ~Unet2D() override;

  ag::Var forward(const ag::Var& x, const Tensor& t, const ag::Var& x_self_cond) override;
  bool self_condition() const override { return false; }
  int channels() const override { return cfg_.in_channels; }

  // Training mode: with a generator, every ResnetBlock2D's dropout (p = config dropout) draws its
  // mask from it (Philox, reserve_at: CUDA-graph safe; its state is the trainer's to save).
  // nullptr (the default) is eval mode: no dropout.
  void set_dropout_generator(Generator* gen) { dropout_gen_ = gen; }

  const Unet2DConfig& config() const { return cfg_; }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }

 private:
  struct Impl;
  Unet2DConfig cfg_;
  ParamSet params_;
  std::unique_ptr<Impl> impl_;
  Generator* dropout_gen_ = nullptr;
};

}  // namespace dd::models
