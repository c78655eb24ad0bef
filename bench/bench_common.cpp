#include "bench/bench_common.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <omp.h>

#include "engine/error.h"
#include "engine/rng.h"
#include "kernels/linear.h"

#ifdef DD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "kernels/cuda/cublas.cuh"
#endif

#ifndef DD_SOURCE_DIR
#define DD_SOURCE_DIR "."
#endif

namespace dd::bench {

std::string Args::get(const std::string& name, const std::string& def) const {
  for (std::size_t i = 0; i + 1 < rest.size(); ++i)
    if (rest[i] == name) return rest[i + 1];
  return def;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 0; i < argc; ++i) a.command += (i ? " " : "") + std::string(argv[i]);
  auto next_int = [&](int& i) {
    DD_CHECK(i + 1 < argc, argv[i], " needs a value");
    return std::atoi(argv[++i]);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--cpu") a.cpu = true;
    else if (s == "--quick") a.quick = true;
    else if (s == "--warmup") a.warmup = next_int(i);
    else if (s == "--repeats") a.repeats = next_int(i);
    else if (s == "--batch") a.batch = next_int(i);
    else a.rest.push_back(s);
  }
  return a;
}

void require_device(const Args& a) {
  if (a.cpu) return;
  DD_CHECK(cuda_available(), "this benchmark runs on a CUDA device and none is usable here (",
           cuda_built() ? "built with CUDA, no device found" : "built without CUDA",
           "); pass --cpu for the CPU backend");
}

namespace {
std::string run_cmd(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}
}  // namespace

std::string device_description(Device d) {
  if (d == Device::CUDA) {
#ifdef DD_WITH_CUDA
    int dev = 0;
    cudaDeviceProp p{};
    DD_CUDA_CHECK(cudaGetDevice(&dev));
    DD_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    int drv = 0;
    cudaDriverGetVersion(&drv);
    return str_cat(p.name, ", ", p.multiProcessorCount, " SMs, ", p.totalGlobalMem >> 30, " GiB, L2 ",
                   p.l2CacheSize >> 20, " MB, driver ", drv / 1000, ".", (drv % 1000) / 10);
#endif
  }
  std::string model = run_cmd("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'");
  return str_cat(model.empty() ? "CPU" : model, ", ", sysconf(_SC_NPROCESSORS_ONLN), " cores online, ",
                 omp_get_max_threads(), " OpenMP threads; load average ",
                 run_cmd("cut -d' ' -f1-3 /proc/loadavg"));
}

void print_header(const std::string& title, const Args& a) {
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  // DD_COMMIT: set by the GPU scripts, whose binaries may have been built elsewhere and whose tree
  // may have no .git.
  const char* env_commit = std::getenv("DD_COMMIT");
  std::string commit = env_commit && *env_commit
                           ? std::string(env_commit)
                           : run_cmd(str_cat("git -C '", DD_SOURCE_DIR, "' describe --always --dirty 2>/dev/null"));
  std::printf("\n### %s\n\n", title.c_str());
  std::printf("- device: %s\n- date: %s\n- commit: %s\n- command: `%s`\n\n", device_description(a.device()).c_str(),
              date, commit.empty() ? "unknown" : commit.c_str(), a.command.c_str());
  std::fflush(stdout);
}

void table_header(const std::vector<std::string>& cols) {
  table_row(cols);
  std::vector<std::string> sep(cols.size(), "---");
  table_row(sep);
}

void table_row(const std::vector<std::string>& cells) {
  std::string line = "|";
  for (const auto& c : cells) line += " " + c + " |";
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string fmt(double v, int digits) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  const double a = std::fabs(v);
  // Keep about `digits` significant figures without scientific notation for table readability.
  int dec = a >= 1000 ? 0 : a >= 100 ? std::max(0, digits - 3) : a >= 10 ? std::max(0, digits - 2)
          : a >= 1 ? std::max(0, digits - 1) : digits;
  if (a > 0 && a < 1) dec = std::min(8, digits + static_cast<int>(-std::floor(std::log10(a))) - 1);
  std::snprintf(buf, sizeof buf, "%.*f", dec, v);
  return buf;
}

std::string fmt_err(double e) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", e);
  return buf;
}

std::string fmt_shape(const Shape& s) {
  std::string r;
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r;
}

Tensor random_tensor(const Shape& s, Device d, uint64_t seed, float scale) {
  Tensor t = randn(s, seed, 0, d);
  if (scale != 1.0f) {
    // Scaling on the host keeps this file free of kernels; inputs are made once per benchmark.
    std::vector<float> v = t.to_vector();
    for (float& x : v) x *= scale;
    t = Tensor::from_vector(s, v, d);
  }
  return t;
}

double rel_err(const Tensor& actual, const Tensor& expected) {
  const std::vector<float> e = expected.to_vector();
  std::vector<double> ed(e.begin(), e.end());
  return rel_err(actual, ed);
}

double rel_err(const Tensor& actual, const std::vector<double>& e) {
  const std::vector<float> a = actual.to_vector();
  if (a.size() != e.size()) return std::numeric_limits<double>::infinity();
  double max_e = 0, max_d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    max_e = std::max(max_e, std::fabs(e[i]));
    max_d = std::max(max_d, std::fabs(static_cast<double>(a[i]) - e[i]));
  }
  return max_d / std::max(max_e, 1e-6);
}

bool check(const std::string& what, double err, double tol) {
  const bool ok = err <= tol;
  std::fprintf(stderr, "check %-48s rel err %.3g (tol %.0e) %s\n", what.c_str(), err, tol, ok ? "ok" : "FAIL");
  return ok;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#ifdef DD_WITH_CUDA
namespace {
// A buffer larger than the H100's 50 MB L2; writing it evicts whatever the last repeat left there.
void flush_l2() {
  static void* buf = nullptr;
  constexpr std::size_t kBytes = 256u << 20;
  if (!buf) DD_CUDA_CHECK(cudaMalloc(&buf, kBytes));
  DD_CUDA_CHECK(cudaMemsetAsync(buf, static_cast<int>(std::rand() & 0xff), kBytes, cuda_stream()));
}

double time_gpu_ms(const std::function<void()>& fn, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  DD_CUDA_CHECK(cudaEventCreate(&a));
  DD_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    flush_l2();
    DD_CUDA_CHECK(cudaEventRecord(a, cuda_stream()));
    fn();
    DD_CUDA_CHECK(cudaEventRecord(b, cuda_stream()));
    DD_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    DD_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  DD_CUDA_CHECK(cudaEventDestroy(a));
  DD_CUDA_CHECK(cudaEventDestroy(b));
  return median(ms);
}
}  // namespace
#endif

double time_ms(Device d, const std::function<void()>& fn, int warmup, int repeats) {
#ifdef DD_WITH_CUDA
  if (d == Device::CUDA) return time_gpu_ms(fn, warmup, repeats);
#endif
  DD_CHECK(d == Device::CPU, "time_ms: no CUDA in this build");
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
  return median(ms);
}

double measured_copy_gbs(Device d) {
#ifdef DD_WITH_CUDA
  if (d == Device::CUDA) {
    const std::size_t bytes = std::size_t(1) << 30;
    void *src = nullptr, *dst = nullptr;
    DD_CUDA_CHECK(cudaMalloc(&src, bytes));
    DD_CUDA_CHECK(cudaMalloc(&dst, bytes));
    DD_CUDA_CHECK(cudaMemsetAsync(src, 1, bytes, cuda_stream()));
    const double ms = time_gpu_ms(
        [&] { DD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream())); }, 3, 20);
    DD_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    DD_CUDA_CHECK(cudaFree(src));
    DD_CUDA_CHECK(cudaFree(dst));
    return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
  }
#endif
  const std::size_t n = std::size_t(64) << 20;  // floats: 256 MB
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  const double ms = time_ms(Device::CPU, [&] { std::memcpy(b.data(), a.data(), n * sizeof(float)); }, 1, 5);
  return 2.0 * static_cast<double>(n * sizeof(float)) / (ms * 1e-3) / 1e9;
}

double measured_sgemm_tflops(Device d) {
#ifdef DD_WITH_CUDA
  if (d == Device::CUDA) {
    const int n = 4096;
    Tensor A = random_tensor({n, n}, d, 1), B = random_tensor({n, n}, d, 2), C = Tensor::empty({n, n}, d);
    const float one = 1.0f, zero = 0.0f;
    cublasHandle_t h = kernels::cuda::cublas_handle();
    DD_CHECK(!kernels::cuda::tf32_enabled(), "the SGEMM yardstick expects the engine's pedantic fp32 cuBLAS mode");
    const double ms = time_gpu_ms(
        [&] {
          DD_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A.data(), n, B.data(), n, &zero,
                                      C.data(), n));
        },
        3, 20);
    return 2.0 * n * double(n) * n / (ms * 1e-3) / 1e12;
  }
#endif
  // The CPU backend's own GEMM (Eigen, threaded), through its linear layer: y = x w^T.
  const int n = 1024;
  Tensor x = random_tensor({n, n}, Device::CPU, 1), w = random_tensor({n, n}, Device::CPU, 2);
  const double ms = time_ms(Device::CPU, [&] { kernels::cpu::linear_forward(x, w, Tensor()); }, 1, 5);
  return 2.0 * n * double(n) * n / (ms * 1e-3) / 1e12;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace dd::bench

namespace dd::bench {

Pair random_pair(const Shape& s, const Args& a, uint64_t seed, float scale) {
  Pair p;
  p.cpu = random_tensor(s, Device::CPU, seed, scale);
  p.dev = a.cpu ? p.cpu : p.cpu.to(Device::CUDA);
  return p;
}

bool run_cases(const Args& a, const std::vector<OpCase>& cases, double copy_gbs, int warmup, int repeats) {
  const Device dev = a.device();
  const char* rate = a.cpu ? "GFLOP/s" : "TFLOP/s";
  table_header({"op", "shape", "ms", "GB/s", "% of copy", rate, a.cpu ? "rel err vs float64" : "rel err vs CPU"});
  bool all_ok = true;
  for (const OpCase& c : cases) {
    double err = std::numeric_limits<double>::quiet_NaN();
    bool ok = true;
    try {
      if (!a.cpu) {
        const auto got = c.run(dev), want = c.run(Device::CPU);
        err = 0;
        for (std::size_t i = 0; i < got.size(); ++i) err = std::max(err, rel_err(got[i], want[i]));
      } else if (c.ref64) {
        const auto got = c.run(dev);
        const auto want = c.ref64();
        err = 0;
        for (std::size_t i = 0; i < got.size(); ++i) err = std::max(err, rel_err(got[i], want[i]));
      }
      if (!std::isnan(err)) ok = check(c.op + " " + c.shape, err, c.tol);
    } catch (const Error& e) {
      std::fprintf(stderr, "%s %s: %s\n", c.op.c_str(), c.shape.c_str(), e.what());
      table_row({c.op, c.shape, "unavailable, not timed", "", "", "", ""});
      all_ok = false;
      continue;
    }
    if (!ok) {
      table_row({c.op, c.shape, "FAILED validation, not timed", "", "", "", fmt_err(err)});
      all_ok = false;
      continue;
    }
    const double ms = time_ms(dev, [&] { c.run(dev); }, warmup, repeats);
    const double gbs = c.bytes / (ms * 1e-3) / 1e9;
    const double fl = c.flops > 0 ? c.flops / (ms * 1e-3) / (a.cpu ? 1e9 : 1e12) : NAN;
    table_row({c.op, c.shape, fmt(ms), fmt(gbs, 4), fmt(100.0 * gbs / copy_gbs, 3), fmt(fl),
               std::isnan(err) ? "checked by dd_tests" : fmt_err(err)});
  }
  return all_ok;
}

}  // namespace dd::bench
