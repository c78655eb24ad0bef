#pragma once
#include "tests/support/temp_dir.h"
// Naive float64 references for the DDPM arithmetic of seed 003 (forward noising,
// the Algorithm 2 step, the x0 estimate), on [B, inner] data with one
// coefficient per sample, and the file exchange with tests/torch/diffusion_ref.py.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"

namespace dd::ref {

inline std::vector<double> q_sample(const std::vector<double>& x0, const std::vector<double>& noise,
                                    const std::vector<double>& a, const std::vector<double>& b) {
  const std::size_t inner = x0.size() / a.size();
  std::vector<double> y(x0.size());
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = a[i / inner] * x0[i] + b[i / inner] * noise[i];
  return y;
}

// noise empty: the mean only (t == 0).
inline std::vector<double> p_sample_step(const std::vector<double>& x, const std::vector<double>& eps,
                                         const std::vector<double>& noise,
                                         const std::vector<double>& sqrt_recip_alpha,
                                         const std::vector<double>& beta,
                                         const std::vector<double>& sqrt_one_minus_ac,
                                         const std::vector<double>& sigma) {
  const std::size_t inner = x.size() / beta.size();
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    const std::size_t b = i / inner;
    y[i] = sqrt_recip_alpha[b] * (x[i] - beta[b] * eps[i] / sqrt_one_minus_ac[b]);
    if (!noise.empty()) y[i] += sigma[b] * noise[i];
  }
  return y;
}

inline std::vector<double> predict_x0(const std::vector<double>& x, const std::vector<double>& eps,
                                      const std::vector<double>& sqrt_recip_ac,
                                      const std::vector<double>& sqrt_recipm1_ac, bool clamp) {
  const std::size_t inner = x.size() / sqrt_recip_ac.size();
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    const std::size_t b = i / inner;
    const double v = sqrt_recip_ac[b] * x[i] - sqrt_recipm1_ac[b] * eps[i];
    y[i] = clamp ? (v < -1.0 ? -1.0 : (v > 1.0 ? 1.0 : v)) : v;
  }
  return y;
}

// ---- Exchange with the torch reference: raw little-endian arrays (.f32 / .f64),
// until the engine's safetensors reader exists. The tests only run on
// little-endian hosts (x86-64, aarch64), so the bytes are written as they lie.

using TempDir = ::dd::test::TempDir;

template <typename T>
void write_raw(const std::string& path, const std::vector<T>& v) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
    DD_CHECK(f.good(), "write_raw: cannot write ", tmp);
  }
  std::filesystem::rename(tmp, path);
}

template <typename T>
std::vector<T> read_raw(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  DD_CHECK(f.good(), "read_raw: cannot open ", path);
  const std::streamsize bytes = f.tellg();
  DD_CHECK(bytes % static_cast<std::streamsize>(sizeof(T)) == 0, "read_raw: ", path, " has ", bytes,
           " bytes, not a whole number of ", sizeof(T), "-byte values");
  std::vector<T> v(static_cast<std::size_t>(bytes) / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), bytes);
  DD_CHECK(f.good(), "read_raw: short read from ", path);
  return v;
}

// Runs tests/torch/diffusion_ref.py with Debian's python (the one with torch);
// returns the exit status, the script's output going to the test log.
inline int run_torch_ref(const std::string& args) {
  const std::string cmd =
      std::string("/usr/bin/python3 ") + DD_SOURCE_DIR + "/tests/torch/diffusion_ref.py " + args;
  return std::system(cmd.c_str());
}

}  // namespace dd::ref
