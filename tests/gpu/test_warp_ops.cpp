// tests/emu/warp_kernels.cu compiled by nvcc, run on the GPU: the PTX behind
// kernels/cuda/warp_ops.cuh against the same CPU references as the emulated run
// (tests/emu/test_emu_warp.cpp). When both pass, the fragment layouts and the
// cp.async semantics the emulator assumes are the hardware's. Planted bugs run
// here only where they are safe on a device (wrong layouts give wrong answers;
// no faults, no races).
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "engine/device.h"
#include "tests/emu/warp_kernels.h"
#include "tests/emu/warp_reference.h"

using namespace dd::warp_test;
namespace wk = dd::warp_test::cuda;
using wk::Bug;

namespace {

// A device copy of a host vector, read back with host().
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<T>& h) : n_(h.size()), p_(static_cast<T*>(dd::cuda_mem::alloc(bytes()))) {
    dd::cuda_mem::copy_h2d(p_, h.data(), bytes());
  }
  ~DeviceBuffer() { dd::cuda_mem::free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  std::vector<T> host() const {
    std::vector<T> h(n_);
    dd::cuda_mem::copy_d2h(h.data(), p_, bytes());
    return h;
  }

 private:
  std::size_t bytes() const { return n_ * sizeof(T); }
  std::size_t n_;
  T* p_;
};

// The hardware's accumulation is not IEEE round-to-nearest per addition (its
// alignment and rounding are undocumented): allow 8 times the emulator's bound.
constexpr double kDeviceSlack = 8.0;

}  // namespace

TEST_CASE("gpu warp: mma m16n8k16 bf16/f16 and m16n8k8 tf32 match a double matmul", "[gpu][warp][mma]") {
  DD_TEST_RANDOM(rng);
  for (bool f16 : {false, true}) {
    INFO((f16 ? "f16" : "bf16"));
    const Half16 A = random_16bit(rng, 16 * 16, f16), B = random_16bit(rng, 16 * 8, f16);
    const std::vector<float> C = as_float(rng.normal_f32(16 * 8));
    DeviceBuffer<uint16_t> dA(A.bits), dB(B.bits);
    DeviceBuffer<float> dC(C), dD(nans(16 * 8));
    wk::mma16_tile(f16, dA.get(), dB.get(), dC.get(), dD.get());
    CHECK(mma_errors(dD.host(), A.value, B.value, C, 16, 8, 16, kDeviceSlack) == 0);
    for (Bug bug : {Bug::SwappedARegisters, Bug::TransposedBFragment}) {
      wk::mma16_tile(f16, dA.get(), dB.get(), dC.get(), dD.get(), bug);
      CHECK(mma_errors(dD.host(), A.value, B.value, C, 16, 8, 16, kDeviceSlack) > 64);
    }
  }
  const std::vector<float> A = as_float(rng.normal_f32(16 * 8)), B = as_float(rng.normal_f32(8 * 8));
  const std::vector<float> C = as_float(rng.normal_f32(16 * 8));
  std::vector<double> At, Bt;
  for (float v : A) At.push_back(tf32_rna(v));
  for (float v : B) Bt.push_back(tf32_rna(v));
  DeviceBuffer<float> dA(A), dB(B), dC(C), dD(nans(16 * 8));
  wk::mma_tf32_tile(dA.get(), dB.get(), dC.get(), dD.get());
  CHECK(mma_errors(dD.host(), At, Bt, C, 16, 8, 8, kDeviceSlack) == 0);
}

TEST_CASE("gpu warp: ldmatrix gives the fragment layout the emulator assumes", "[gpu][warp][ldmatrix]") {
  std::vector<uint16_t> tile(256);
  for (int i = 0; i < 256; ++i) tile[i] = uint16_t(i);
  DeviceBuffer<uint16_t> dt(tile);
  DeviceBuffer<uint32_t> dout(std::vector<uint32_t>(128));
  for (int num : {1, 2, 4})
    for (bool trans : {false, true}) {
      INFO("x" << num << (trans ? ".trans" : ""));
      wk::ldmatrix_fragments(dt.get(), num, trans, dout.get());
      CHECK(dout.host() == ldmatrix_expected(num, trans));
    }
}

TEST_CASE("gpu warp: cp.async + ldmatrix + mma compute a 32x16 tile", "[gpu][warp][ldmatrix][mma][cp_async]") {
  DD_TEST_RANDOM(rng);
  for (bool f16 : {false, true}) {
    INFO((f16 ? "f16" : "bf16"));
    const Half16 A = random_16bit(rng, 32 * 32, f16), B = random_16bit(rng, 32 * 16, f16);
    const std::vector<float> C = as_float(rng.normal_f32(32 * 16));
    DeviceBuffer<uint16_t> dA(A.bits), dB(B.bits);
    DeviceBuffer<float> dC(C), dD(nans(32 * 16));
    wk::ldmatrix_mma(f16, dA.get(), dB.get(), dC.get(), dD.get());
    CHECK(mma_errors(dD.host(), A.value, B.value, C, 32, 16, 32, kDeviceSlack) == 0);
    wk::ldmatrix_mma(f16, dA.get(), dB.get(), dC.get(), dD.get(), Bug::NoTransB);
    CHECK(mma_errors(dD.host(), A.value, B.value, C, 32, 16, 32, kDeviceSlack) > 256);
  }
}

TEST_CASE("gpu warp: cp.async pipelines and zero-filled halos", "[gpu][warp][cp_async]") {
  DD_TEST_RANDOM(rng);
  for (int stages : {2, 3})
    for (int tiles : {1, 2, 5}) {
      INFO(stages << " stages, " << tiles << " tiles");
      const std::vector<float> src = as_float(rng.normal_f32(128 * tiles));
      DeviceBuffer<float> ds(src), dout(nans(128 * tiles));
      wk::cp_async_pipeline(stages, ds.get(), tiles, dout.get());
      CHECK(dout.host() == pipeline_expected(src, tiles));
    }
  for (int n : {133, 64, 65, 8}) {
    INFO("n = " << n);
    const std::vector<float> x = as_float(rng.normal_f32(n));
    // compute-sanitizer memcheck checks a partial chunk's whole 16-byte source range, src-size
    // notwithstanding (seen on an H200, 2026-11-27), so the buffer runs on to a multiple of 4 floats.
    // The padding is NaN: a byte past src-size that landed would show in the sums.
    std::vector<float> padded = x;
    padded.resize((n + 3) / 4 * 4, std::numeric_limits<float>::quiet_NaN());
    DeviceBuffer<float> dx(padded), dout(nans(n));
    wk::cp_async_halo(dx.get(), n, dout.get());
    CHECK(dout.host() == halo_expected(x));
  }
}

TEST_CASE("gpu warp: shuffles and votes, and dynamic shared memory above 48 KB", "[gpu][warp][shfl][smem]") {
  DD_TEST_RANDOM(rng);
  std::vector<float> x(64);
  for (float& v : x) v = float(rng.uniform_int(-8, 8));
  DeviceBuffer<float> dx(x), dout(nans(7 * 64));
  DeviceBuffer<uint32_t> dbits(std::vector<uint32_t>(3 * 64));
  wk::warp_shuffles(dx.get(), 64, dout.get(), dbits.get());
  CHECK(shuffle_mismatch(x, dout.host(), dbits.host()) == "");

  const int n = 16384;  // 64 KB
  std::vector<float> r(n), want(n);
  for (int i = 0; i < n; ++i) r[i] = float(i), want[i] = float(n - 1 - i);
  DeviceBuffer<float> dr(r), drev(nans(n));
  wk::dynamic_smem_reverse(dr.get(), n, drev.get(), n * 4);
  CHECK(drev.host() == want);
}

TEST_CASE("gpu warp: block totals through static shared memory", "[gpu][warp][smem]") {
  const int blocks = 3, threads = 96;
  std::vector<float> x(blocks * threads), want(blocks * threads);
  for (int i = 0; i < blocks * threads; ++i) x[i] = float(i % 7) - 2.0f;
  for (int b = 0; b < blocks; ++b) {
    float sum = 0.0f;
    for (int t = 0; t < threads; ++t) sum += x[b * threads + t];
    for (int t = 0; t < threads; ++t) want[b * threads + t] = sum;
  }
  DeviceBuffer<float> dx(x), dout(nans(blocks * threads));
  wk::block_totals(dx.get(), blocks, threads, dout.get());
  CHECK(dout.host() == want);
}

// The emulator throws on a block larger than a kernel's __launch_bounds__ because the device refuses
// the launch: this is the device's side of that. Left out of the sanitizer runs (scripts/gpu_check.sh),
// which would report the refused launch as an API error.
TEST_CASE("gpu warp: launches past __launch_bounds__ or the 48 KB of shared memory are refused, as the emulator says",
          "[gpu][warp][launch_error]") {
  std::vector<float> want(64);
  for (int t = 0; t < 64; ++t) want[t] = float(t);
  DeviceBuffer<float> dout(nans(96));
  wk::bounded_iota(64, dout.get());
  std::vector<float> got = dout.host();
  CHECK(std::vector<float>(got.begin(), got.begin() + 64) == want);
  CHECK_THROWS(wk::bounded_iota(96, dout.get()));
  // Not a sticky error: the next launch works.
  wk::bounded_iota(64, dout.get());
  got = dout.host();
  CHECK(std::vector<float>(got.begin(), got.begin() + 64) == want);

  // 40 KB static + 12 KB dynamic shared memory: refused without the opt-in, run with it (the
  // emulator's rule, tests/emu/test_emu_warp.cpp). The attribute stays set for the process after.
  std::vector<float> want_smem(256);
  for (int t = 0; t < 256; ++t) want_smem[t] = float(t + 3072);
  DeviceBuffer<float> dsmem(nans(256));
  CHECK_THROWS(wk::static_and_dynamic_smem(3072, dsmem.get(), -1));
  wk::static_and_dynamic_smem(3072, dsmem.get(), 12288);
  CHECK(dsmem.host() == want_smem);
}
