#pragma once
// A streamed sampling job (sample_ddpm --each-dir): every image its own PNG, written batch by batch,
// so 50,000 samples for FID never sit in memory, and a job that was interrupted (a signal, a crash, a
// lost machine) continues where it stopped.
//
// The folder holds .sample_job.json (hidden, so the folder stays an image folder), the job's identity
// (weights, seed, batch size, count, sampler settings). A rerun with the same identity skips every batch whose images are all present (each PNG
// is written to a temporary name and renamed, so a present file is complete) and draws the rest; since
// batch b's noise depends only on the seed and b (SampleRequest::first_batch), the result equals an
// uninterrupted run's. A rerun with another identity is refused rather than mixing two jobs' images.
#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"

namespace dd::ddpm {

struct SampleJob {
  std::string dir;
  nlohmann::json identity;  // whatever decides the images; "n" and "batch_size" must be in it
  int n = 0;
  int batch_size = 0;

  // "00042.png": five digits, more when n needs them.
  std::string file_name(int64_t index) const;
  int64_t batches() const { return (n + batch_size - 1) / batch_size; }
  // Creates the folder and its .sample_job.json, or checks an existing one against identity (throws
  // naming the folder and the first field that differs). Returns the first batch with a missing image
  // (batches() when the job is complete). Files beyond that batch are redrawn, never trusted.
  int64_t prepare(std::FILE* log) const;
  // Writes batch b's images ([n_b, H, W, C] in [-1, 1]) as PNGs.
  void write_batch(int64_t b, const Tensor& images) const;
};

}  // namespace dd::ddpm
