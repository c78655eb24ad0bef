#pragma once
// Everything a training run is configured by. Saved into the checkpoint, so --resume continues a
// run with the settings it was started with.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/device.h"

namespace dd::ddpm {

struct TrainOptions {
  // data
  std::string data;        // "" = Fashion-MNIST from /usr/share/datasets/fashion-mnist
  int image_size = 0;      // 0 = the dataset's own size
  int channels = 0;        // 0 = the dataset's own channel count
  bool random_flip = true;
  // model
  std::string model = "unet";     // unet (the seed's), ddpm-cifar10 (UNet2DModel, paper recipe) or unet2d
  nlohmann::json unet2d_config;   // unet2d: diffusers' UNet2DModel config.json (--model-config); null otherwise
  double dropout = -1.0;          // UNet2DModel dropout; < 0 = the config's
  int dim = 32;
  std::vector<int> dim_mults{1, 2, 4};
  int resnet_block_groups = 4;
  bool self_condition = false;
  // diffusion
  int timesteps = 1000;
  std::string beta_schedule = "linear";
  bool rescale_zero_terminal_snr = false;  // Lin et al. 2023 (diffusers' rescale_betas_zero_snr)
  std::string loss = "huber";
  std::string objective = "pred_noise";  // pred_noise, pred_x0, pred_v (lucidrains')
  double min_snr_gamma = 0.0;            // min-SNR loss weighting; 0 = off (--min-snr: 5)
  double offset_noise = 0.0;             // offset noise strength; 0 = off
  // optimisation
  int64_t steps = 20000;
  int batch_size = 64;
  int grad_accum = 1;  // micro-batches of --batch-size per optimizer step
  double lr = 1e-3;
  double grad_clip = 1.0;  // 0 = off
  double weight_decay = 0.0;            // decoupled (AdamW); 0 = plain Adam
  int64_t lr_warmup_steps = 0;          // diffusers' lr_warmup_steps
  std::string lr_schedule = "constant";  // constant, linear, cosine (apps/ddpm/lr_schedule.h)
  double ema_decay = 0.995;  // 0 = no EMA
  int ema_every = 10;
  int64_t ema_start = 100;
  // run
  std::string out = "run";
  int64_t sample_every = 1000;  // 0 = only at the end
  int64_t save_every = 1000;    // 0 = only at the end
  int keep_checkpoints = 2;     // training states kept: the newest and K - 1 older (apps/ddpm/checkpoint_files.h)
  int n_samples = 36;
  std::string sample_sampler = "ddim";  // the periodic grids' sampler: ddim (fast) or ddpm (all T steps)
  int sample_steps = 50;                // DDIM steps of those grids (at most --timesteps)
  // DDIM's eta for those grids: 1 (stochastic, a respaced ancestral sampler) shows what a young or
  // small model can do; 0 (deterministic) follows its probability-flow ODE, which for such models
  // ends in broken shapes (README, "Samplers").
  double sample_eta = 1.0;
  // FID during training (apps/ddpm/train_fid.h): every fid_every steps (0 = never), fid_samples images
  // drawn with the grids' sampler from the EMA weights, scored against fid_ref with fid_inception.
  int64_t fid_every = 0;
  int fid_samples = 5000;
  std::string fid_ref;        // statistics file, dataset or image folder ("" = the training --data)
  std::string fid_inception;  // scripts/convert_inception.py's file
  int fid_batch = 128;        // images denoised at once for FID
  int64_t log_every = 50;
  uint64_t seed = 0;
  std::string device = "auto";
  int threads = 0;  // 0 = OpenMP's default
  std::string cuda_graphs = "auto";  // on, off, auto (= on for a CUDA device); see apps/ddpm/train_step.h
  std::string precision = "fp32";    // fp32, tf32, bf16: engine/context.h's policy; a resume may change it
  // Time the tensor-core convolutions' options per shape and run the fastest (kernels/conv_autotune.h);
  // the choices are kept in the run folder (conv_autotune.tsv), so a resumed run runs the same ones.
  bool conv_autotune = false;
  bool resume = false;

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j);
};

// --model ddpm-cifar10: Ho et al.'s CIFAR-10 recipe for every option not in `explicit_keys`:
// Adam lr 2e-4, 5000 warm-up steps, grad clip 1, EMA 0.9999 every step from step 0, batch 128,
// random flips, dropout 0.1, 800k steps, T = 1000 linear betas, L2 loss on the noise; and the
// google/ddpm-cifar10-32 architecture (unet2d_config).
void apply_ddpm_cifar10_preset(TrainOptions& o, const std::vector<std::string>& explicit_keys);

// Flags that a resumed run may change; any other flag given with --resume must match the run.
bool resumable_override(const std::string& key);

// --cuda-graphs (train_ddpm and sample_ddpm): "on", "off" or "auto" (on for a CUDA device); throws
// naming the flag for anything else, or for "on" without a CUDA device.
bool resolve_cuda_graphs(const std::string& value, Device dev);

}  // namespace dd::ddpm
