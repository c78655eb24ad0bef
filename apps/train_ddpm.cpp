// train_ddpm: trains the seed U-Net as a DDPM on Fashion-MNIST (default), CIFAR-10 or an image
// folder, writing weights, checkpoints, sample grids, a metrics log and a loss curve into --out.
#include <CLI/CLI.hpp>

#include <fstream>
#include <memory>

#include <cstdio>
#include <sstream>

#include "apps/ddpm/interrupt.h"
#include "apps/ddpm/trainer.h"
#include "apps/dist/comm.h"
#include "engine/error.h"
#include "models/unet2d.h"

namespace {

std::vector<int> parse_mults(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      DD_CHECK(used == item.size() && v > 0, "");
      out.push_back(v);
    } catch (...) {
      DD_FAIL("--dim-mults must be positive integers separated by commas (e.g. 1,2,4), got '", s, "'");
    }
  }
  DD_CHECK(!out.empty(), "--dim-mults must not be empty");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  dd::ddpm::TrainOptions o;
  std::string mults = "1,2,4";
  CLI::App app{"Train a DDPM (the seed U-Net, or diffusers' UNet2DModel: --model) on a CUDA GPU or the CPU (--device). Writes into --out: model.safetensors (the weights to "
               "sample from; EMA when on), checkpoint.safetensors (full state for --resume), samples/step_*.png, "
               "metrics.csv, loss_curve.png, config.json."};
  app.add_option("--data", o.data,
                 "Fashion-MNIST IDX file or folder, a CIFAR-10 binary folder (data_batch_*.bin) or an image folder; "
                 "default: /usr/share/datasets/fashion-mnist");
  app.add_option("--out", o.out, "run folder")->capture_default_str();
  app.add_option("--steps", o.steps, "total optimisation steps (a resumed run continues to this number)")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "images per micro-batch (per step without --grad-accum)")
      ->capture_default_str();
  app.add_option("--grad-accum", o.grad_accum,
                 "micro-batches of --batch-size whose gradients are summed into one optimizer step (the loss is "
                 "their mean)")
      ->capture_default_str();
  app.add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  app.add_option("--grad-clip", o.grad_clip, "clip the global gradient norm to this (0 = off)")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "decoupled weight decay, as torch.optim.AdamW (0 = Adam)")
      ->capture_default_str();
  app.add_option("--lr-warmup-steps", o.lr_warmup_steps, "linear warm-up of the learning rate from 0 (diffusers')")
      ->capture_default_str();
  app.add_option("--lr-schedule", o.lr_schedule, "constant, linear or cosine decay to --steps, after the warm-up")
      ->capture_default_str();
  app.add_option("--image-size", o.image_size, "train at this size (center-crop + resize); 0 = the dataset's")->capture_default_str();
  app.add_option("--channels", o.channels, "1 or 3; 0 = the dataset's")->capture_default_str();
  app.add_flag("!--no-flip", o.random_flip, "no random horizontal flips");
  std::string model_config;
  app.add_option("--model", o.model,
                 "unet (the seed's U-Net, --dim/--dim-mults), ddpm-cifar10 (diffusers' UNet2DModel as "
                 "google/ddpm-cifar10-32, with Ho et al.'s recipe as the default of every flag not given: Adam 2e-4, "
                 "5000 warm-up steps, grad clip 1, EMA 0.9999 every step, batch 128, flips, dropout 0.1, 800k steps, "
                 "L2 loss) or unet2d (--model-config)")
      ->capture_default_str();
  app.add_option("--model-config", model_config,
                 "diffusers' UNet2DModel config.json (implies --model unet2d unless --model ddpm-cifar10)");
  app.add_option("--dropout", o.dropout, "UNet2DModel dropout (default: the config's; 0.1 with ddpm-cifar10)");
  app.add_option("--dim", o.dim, "U-Net base width")->capture_default_str();
  app.add_option("--dim-mults", mults, "width multiplier per level, comma separated")->capture_default_str();
  app.add_option("--resnet-block-groups", o.resnet_block_groups, "GroupNorm groups in the ResNet blocks")->capture_default_str();
  app.add_flag("--self-condition", o.self_condition, "self-conditioning (a no-grad first pass on half the steps)");
  app.add_option("--timesteps", o.timesteps, "diffusion steps T")->capture_default_str();
  app.add_option("--beta-schedule", o.beta_schedule, "linear, cosine, quadratic or sigmoid")->capture_default_str();
  app.add_flag("--rescale-zero-terminal-snr", o.rescale_zero_terminal_snr,
               "rescale the betas to zero terminal SNR (Lin et al.; diffusers' rescale_betas_zero_snr); needs "
               "--objective pred_v or pred_x0");
  app.add_option("--loss", o.loss, "l1, l2 or huber")->capture_default_str();
  app.add_option("--objective", o.objective, "what the model predicts: pred_noise, pred_x0 or pred_v (lucidrains')")
      ->capture_default_str();
  bool min_snr = false;
  app.add_flag("--min-snr", min_snr, "min-SNR loss weighting with gamma 5 (Hang et al.; --min-snr-gamma sets gamma)");
  app.add_option("--min-snr-gamma", o.min_snr_gamma, "min-SNR gamma (0 = off)")->capture_default_str();
  app.add_option("--offset-noise", o.offset_noise, "offset noise strength (0 = off; e.g. 0.1)")->capture_default_str();
  app.add_option("--ema-decay", o.ema_decay, "EMA decay of the weights (0 = no EMA)")->capture_default_str();
  app.add_option("--ema-every", o.ema_every, "update the EMA every this many steps")->capture_default_str();
  app.add_option("--ema-start", o.ema_start, "the EMA copies the weights until this step")->capture_default_str();
  app.add_option("--sample-every", o.sample_every, "write a sample grid every this many steps (0 = at the end only)")->capture_default_str();
  app.add_option("--save-every", o.save_every, "write a checkpoint every this many steps (0 = at the end only)")->capture_default_str();
  app.add_option("--keep-checkpoints", o.keep_checkpoints,
                 "training states kept in --out: the newest and K - 1 older; --resume takes the newest that "
                 "verifies")
      ->capture_default_str();
  app.add_option("--n-samples", o.n_samples, "images per sample grid")->capture_default_str();
  app.add_option("--sample-sampler", o.sample_sampler,
                 "sampler of the sample grids: ddim (--sample-steps steps, eta 0), dpmpp (DPM-Solver++ 2M, "
                 "--sample-steps steps) or ddpm (all --timesteps steps)")
      ->capture_default_str();
  app.add_option("--sample-eta", o.sample_eta,
                 "DDIM eta of the sample grids: 1 stochastic (shows a young or small model best), 0 deterministic")
      ->capture_default_str();
  app.add_option("--sample-steps", o.sample_steps, "ddim/dpmpp steps of the sample grids (at most --timesteps)")
      ->capture_default_str();
  app.add_option("--fid-every", o.fid_every,
                 "FID every this many steps (0 = never) from --fid-samples images of the EMA weights (the grids' "
                 "sampler), logged to fid.csv and fid_curve.png; needs --fid-inception")
      ->capture_default_str();
  app.add_option("--fid-samples", o.fid_samples, "images sampled for each FID (50000 for published numbers)")
      ->capture_default_str();
  app.add_option("--fid-ref", o.fid_ref,
                 "FID reference: statistics file (ddpm_tool fid-stats, pytorch-fid .npz), dataset or image folder; "
                 "default the training data at its own size (its statistics are cached in the run folder)");
  app.add_option("--fid-inception", o.fid_inception, "Inception weights for FID (scripts/convert_inception.py)");
  app.add_option("--fid-batch", o.fid_batch, "images denoised at once for FID")->capture_default_str();
  app.add_option("--log-every", o.log_every, "steps per metrics.csv row")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the initialisation, noise, timesteps and data order")->capture_default_str();
  app.add_option("--device", o.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--cuda-graphs", o.cuda_graphs,
                 "on, off or auto: capture the training step as a CUDA graph once and replay it (auto = on for "
                 "--device cuda)")
      ->capture_default_str();
  app.add_option("--precision", o.precision,
                 "fp32, tf32 or bf16: how convolutions, attention and GEMMs round their operands; fp32 master "
                 "weights, accumulation, GroupNorm statistics, softmax, loss, Adam and EMA always (README "
                 "'Precision'); a resumed run may change it")
      ->capture_default_str();
  app.add_flag("--conv-autotune", o.conv_autotune,
               "time every tile and split of the tensor-core convolutions (tf32, bf16 on CUDA) per shape on the "
               "first step and run the fastest, as cudnn.benchmark; the choices are kept in the run folder "
               "(conv_autotune.tsv) for --resume");
  app.add_flag("--resume", o.resume, "continue the run in --out from its checkpoint");
  CLI11_PARSE(app, argc, argv);
  std::unique_ptr<dd::dist::Comm> comm;
  if (min_snr && o.min_snr_gamma == 0.0) o.min_snr_gamma = 5.0;
  try {
    o.dim_mults = parse_mults(mults);
    // Keys the user set explicitly: a resumed run must not silently ignore them.
    std::vector<std::string> given;
    for (const CLI::Option* opt : app.get_options()) {
      if (opt->count() == 0 || opt->get_name() == "--help" || opt->get_name() == "--resume") continue;
      std::string key = opt->get_name();
      while (!key.empty() && key[0] == '-') key.erase(0, 1);
      for (char& c : key)
        if (c == '-') c = '_';
      if (key == "no_flip") key = "random_flip";
      if (key == "min_snr") key = "min_snr_gamma";
      if (key == "model_config") key = "unet2d_config";
      given.push_back(key);
    }
    if (!model_config.empty()) {
      std::ifstream in(model_config);
      DD_CHECK(in.good(), "--model-config: cannot open ", model_config);
      try {
        o.unet2d_config = nlohmann::json::parse(in);
      } catch (const std::exception& e) {
        DD_FAIL("--model-config ", model_config, ": not valid JSON: ", e.what());
      }
      dd::models::Unet2DConfig::from_json(o.unet2d_config, model_config);  // errors name the file
      if (o.model == "unet") o.model = "unet2d";
    }
    if (o.model == "ddpm-cifar10") dd::ddpm::apply_ddpm_cifar10_preset(o, given);
    // Data parallel when a launcher started several of us (apps/dist/launch.h); MPI ends with comm.
    comm = dd::dist::Comm::init(dd::dist::detect_launch());
    const auto summary = dd::ddpm::train(o, given, stderr, comm.get());
    // 130 for SIGINT, 143 for SIGTERM (apps/ddpm/interrupt.h).
    return summary.interrupted ? dd::ddpm::stop_exit_code() : 0;
  } catch (const std::exception& e) {
    // A rank that fails must take the others down, or they would wait in the next collective forever.
    if (comm && comm->distributed()) comm->abort(std::string("train_ddpm: ") + e.what());
    std::fprintf(stderr, "train_ddpm: error: %s\n", e.what());
    return 1;
  }
}
