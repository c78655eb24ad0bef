#pragma once
// Shared pieces of the benchmarks: flags, timers, validate-then-time, and markdown table rows.
//
// Every benchmark validates a kernel on the same inputs it times and refuses to time one that fails.
// CPU timers: steady_clock, warm-up, median of N repeats. GPU timers: CUDA events on the engine
// stream, warm-up, median of many repeats, the L2 flushed between repeats (a write of a buffer
// larger than the H100's 50 MB L2).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"

namespace dd::bench {

struct Args {
  bool cpu = false;      // --cpu: the CPU backend (default: CUDA)
  int warmup = -1;       // --warmup N (-1: the benchmark's default for the device)
  int repeats = -1;      // --repeats N
  int batch = -1;        // --batch N (-1: the benchmark's default)
  bool quick = false;    // --quick: fewer shapes / steps (smoke runs)
  std::vector<std::string> rest;  // anything else, for the benchmark to read
  std::string command;            // argv joined, for the table header
  Device device() const { return cpu ? Device::CPU : Device::CUDA; }
  int warmup_or(int gpu_default, int cpu_default) const { return warmup >= 0 ? warmup : (cpu ? cpu_default : gpu_default); }
  int repeats_or(int gpu_default, int cpu_default) const { return repeats > 0 ? repeats : (cpu ? cpu_default : gpu_default); }
  int batch_or(int gpu_default, int cpu_default) const { return batch > 0 ? batch : (cpu ? cpu_default : gpu_default); }
  // The value after `--name`, or def.
  std::string get(const std::string& name, const std::string& def) const;
};
Args parse_args(int argc, char** argv);

// Throws unless the device asked for is usable (a clear message instead of a crash on a CPU box).
void require_device(const Args& a);

// "### title" then device, date, commit, command (one line each) above a table.
void print_header(const std::string& title, const Args& a);
std::string device_description(Device d);

// Markdown table helpers.
void table_header(const std::vector<std::string>& cols);
void table_row(const std::vector<std::string>& cells);
std::string fmt(double v, int digits = 3);   // fixed with `digits` significant-ish decimals
std::string fmt_shape(const Shape& s);
std::string fmt_err(double e);               // "3.1e-07"

// Random normal inputs (Philox, generated on the tensor's device), never zeros.
Tensor random_tensor(const Shape& s, Device d, uint64_t seed, float scale = 1.0f);

// Relative error as tests/support/compare.h measures it: max |a - e| / max(max |e|, 1e-6);
// any NaN/Inf in actual makes it +inf.
double rel_err(const Tensor& actual, const Tensor& expected);
double rel_err(const Tensor& actual, const std::vector<double>& expected);
// Prints "check <what>: rel err X (tol T) ok|FAIL" to stderr and returns whether it passed.
bool check(const std::string& what, double err, double tol);

// Median milliseconds of fn over `repeats` runs after `warmup` runs, on the device asked for.
// GPU: CUDA events around fn on dd::cuda_stream(), the L2 flushed before each repeat.
double time_ms(Device d, const std::function<void()>& fn, int warmup, int repeats);
double median(std::vector<double> v);

// Device yardsticks measured in the same run (GPU: cudaMemcpyAsync device-to-device of 1 GiB,
// bytes read + written; a 4096^3 fp32 SGEMM without TF32. CPU: a 256 MB memcpy; the CPU backend's
// linear layer (Eigen's threaded SGEMM) at 1024^3).
double measured_copy_gbs(Device d);
double measured_sgemm_tflops(Device d);

// Peak resident set size of this process, MiB (CPU peak memory).
double peak_rss_mib();

// One random input held on the CPU and on the benchmark's device (the same values), so a case can
// run on either and be compared.
struct Pair {
  Tensor cpu, dev;
  const Tensor& on(Device d) const { return d == Device::CPU ? cpu : dev; }
};
Pair random_pair(const Shape& s, const Args& a, uint64_t seed, float scale = 1.0f);

// A memory- or math-bound kernel case for run_cases: run(d) computes the outputs from inputs on d.
struct OpCase {
  std::string op, shape;
  double bytes = 0;   // ideal traffic: every input read once, every output written once
  double flops = 0;   // 0: not reported
  double tol = 1e-5;  // relative error bound of the check
  std::function<std::vector<Tensor>(Device)> run;
  // CPU mode only (optional): a float64 reference of the same outputs, for the check.
  std::function<std::vector<std::vector<double>>()> ref64;
};
// Validates each case (GPU: against the CPU backend on the same inputs; CPU: against ref64 when
// given), then times the ones that pass and prints a table row each: ms, GB/s, % of copy_gbs,
// TFLOP/s (GFLOP/s on the CPU) and the error. Returns false when any case failed.
bool run_cases(const Args& a, const std::vector<OpCase>& cases, double copy_gbs, int warmup, int repeats);

}  // namespace dd::bench
