#pragma once
// Drawing images from a trained model (Algorithm 2, x0-form or respaced DDPM, DDIM, DPM-Solver++), in
// batches, with a progress bar counted in sampler steps. Shared by train_ddpm's periodic grids and
// sample_ddpm.
#include <cstdio>
#include <functional>
#include <string>

#include "engine/rng.h"
#include "models/denoiser.h"
#include "models/ddim.h"
#include "models/ddpm_sampler.h"
#include "models/dpm_solver.h"
#include "models/diffusion.h"

namespace dd::ddpm {

struct SampleRequest {
  int n = 16;
  int image_size = 32;
  int batch_size = 64;          // images denoised at once
  uint64_t seed = 0;
  bool show_progress = true;
  std::FILE* progress_out = stderr;
  int trajectory_frames = 0;    // >0: keep this many snapshots of image 0 along the chain
  Device device = Device::CPU;  // where the chain runs: the model's parameters must be there too
  bool cuda_graphs = false;     // replay from CUDA graphs (device CUDA only; see apps/ddpm/chain_graph.h)
  std::string sampler = "ddpm";  // ddpm (Algorithm 2 or x0-form, see ddpm below), ddim or dpmpp
  models::DdimOptions ddim;      // the DDIM sampler's steps, eta, spacing, clipping
  models::DpmSolverOptions dpm;  // DPM-Solver++'s steps, order, spacing
  // ddpm: with fewer steps, custom (respaced) timesteps, fixed_large, clipping, thresholding or at
  // zero terminal SNR, the x0-form sampler (models/ddpm_sampler.h); otherwise Algorithm 2
  // (GaussianDiffusion::p_sample_loop, CUDA graphs on the GPU).
  models::DdpmOptions ddpm;
  // Batch b (counted from first_batch) draws its noise from Generator(seed, b * kBatchNoiseStride), so
  // image i's noise depends only on the seed, the batch size and i: a streamed job resumed at batch k
  // (sample_ddpm --each-dir) gives the images an uninterrupted one would have.
  int64_t first_batch = 0;
  // Called after each batch with its images ([n_b, H, W, C] in [-1, 1], on the CPU) and its number.
  std::function<void(int64_t batch, const Tensor& images)> on_batch;
  bool keep_images = true;  // false: SampleResult::images stays undefined (streamed jobs of any size)
};

// Philox blocks between successive batches' noise: far more than a batch draws (4 normals a block).
constexpr uint64_t kBatchNoiseStride = uint64_t{1} << 40;

struct SampleResult {
  Tensor images;                  // [n, H, W, C] in [-1, 1] (clamped)
  std::vector<Tensor> trajectory;  // [1, H, W, C] snapshots of image 0, from the first step (noise) to x_0
};

// The timesteps the request's sampler visits, from the first step (the noisiest) to the last.
std::vector<int> sampler_timesteps(const models::GaussianDiffusion& diffusion, const SampleRequest& req);

SampleResult sample_images(models::Denoiser& model, const models::GaussianDiffusion& diffusion,
                           const SampleRequest& req);

}  // namespace dd::ddpm
