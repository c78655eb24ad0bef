#pragma once
// FID during training (train_ddpm --fid-every N): every N steps, --fid-samples images from the EMA
// weights with the sample grids' sampler and a fixed noise seed (so successive scores differ by the
// model, not by the noise), scored against the reference with pytorch-fid's Inception-v3.
//
// Scores go to fid.csv in the run folder (step,fid,samples,seconds; a resumed run drops the rows
// after its checkpoint, as metrics.csv does) and, from two scores on, to fid_curve.png. The reference
// is a statistics file, or images (by default the training set as the model sees it, at its size and
// channels), whose statistics are computed once and cached in the run folder as fid_ref.safetensors.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "apps/data/dataset.h"
#include "apps/ddpm/options.h"
#include "apps/ddpm/sampler.h"
#include "models/fid_stats.h"
#include "models/inception.h"

namespace dd::ddpm {

class TrainFid {
 public:
  // Loads Inception and the reference (computing and caching it when it is images); training_set is
  // the data as trained on, used when opts.fid_ref is empty. resume_step: the step resumed from (0 for
  // a new run), whose later fid.csv rows are dropped.
  TrainFid(const TrainOptions& opts, const std::string& run_dir, const data::Dataset& training_set, Device dev,
           int64_t resume_step, std::FILE* log);

  bool due(int64_t step) const { return every_ > 0 && step % every_ == 0; }
  // Samples, scores, logs (fid.csv, fid_curve.png, the log) and returns the FID. `req` carries the
  // sampler settings; its n, batch size, seed and callbacks are set here. Throws Interrupted when a
  // stop is requested mid-sampling (nothing is logged then).
  double evaluate(models::Denoiser& model, const models::GaussianDiffusion& diffusion, SampleRequest req,
                  int64_t step);

  std::string csv_path() const { return dir_ + "/fid.csv"; }
  std::string curve_path() const { return dir_ + "/fid_curve.png"; }

 private:
  int64_t every_ = 0;
  int samples_ = 0, batch_ = 0;
  uint64_t seed_ = 0;
  std::string dir_;
  std::FILE* log_ = nullptr;
  std::optional<fid::InceptionV3> net_;
  fid::FidStats ref_;
};

}  // namespace dd::ddpm
