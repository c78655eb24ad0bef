// kernels/cuda/warp_ops.cuh under the host emulation (tests/support/cuda_emulation*.h):
// mma.sync, ldmatrix, cp.async, shuffles and votes, and dynamic shared memory,
// each against a plain CPU reference, and each with planted bugs that must
// fail (a throw naming the problem, or a wrong answer). The kernels are
// tests/emu/warp_kernels.cu, rewritten like the real kernel files.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "tests/emu/warp_reference.h"
#include "tests/support/cuda_emulation.h"

#define cuda emu
#include "tests/emu/warp_kernels.h"
#undef cuda

using namespace dd::warp_test;
using Catch::Matchers::Contains;
namespace wt = dd::warp_test::emu;
using wt::Bug;

TEST_CASE("emu warp: mma m16n8k16 bf16/f16 matches a double matmul", "[emu][warp][mma]") {
  DD_TEST_RANDOM(rng);
  for (bool f16 : {false, true}) {
    INFO((f16 ? "f16" : "bf16"));
    const Half16 A = random_16bit(rng, 16 * 16, f16), B = random_16bit(rng, 16 * 8, f16);
    const std::vector<float> C = as_float(rng.normal_f32(16 * 8));
    std::vector<float> D = nans(16 * 8);
    wt::mma16_tile(f16, A.bits.data(), B.bits.data(), C.data(), D.data());
    CHECK(mma_errors(D, A.value, B.value, C, 16, 8, 16) == 0);

    // Planted: fragments in the wrong registers give a wrong tile (most elements off).
    for (Bug bug : {Bug::SwappedARegisters, Bug::TransposedBFragment}) {
      std::vector<float> W = nans(16 * 8);
      wt::mma16_tile(f16, A.bits.data(), B.bits.data(), C.data(), W.data(), bug);
      CHECK(mma_errors(W, A.value, B.value, C, 16, 8, 16) > 64);
    }
  }
}

TEST_CASE("emu warp: mma m16n8k8 tf32 matches a double matmul of the rounded inputs", "[emu][warp][mma]") {
  DD_TEST_RANDOM(rng);
  const std::vector<float> A = as_float(rng.normal_f32(16 * 8)), B = as_float(rng.normal_f32(8 * 8));
  const std::vector<float> C = as_float(rng.normal_f32(16 * 8));
  std::vector<double> At, Bt;
  for (float v : A) At.push_back(tf32_rna(v));
  for (float v : B) Bt.push_back(tf32_rna(v));
  std::vector<float> D = nans(16 * 8);
  wt::mma_tf32_tile(A.data(), B.data(), C.data(), D.data());
  CHECK(mma_errors(D, At, Bt, C, 16, 8, 8) == 0);
  for (Bug bug : {Bug::SwappedARegisters, Bug::TransposedBFragment}) {
    std::vector<float> W = nans(16 * 8);
    wt::mma_tf32_tile(A.data(), B.data(), C.data(), W.data(), bug);
    CHECK(mma_errors(W, At, Bt, C, 16, 8, 8) > 64);
  }
}

TEST_CASE("emu warp: a lane that misses mma.sync is warp divergence", "[emu][warp][mma]") {
  std::vector<uint16_t> A(256, 0x3f80), B(128, 0x3f80);  // bf16 1.0
  std::vector<float> C(128, 0.0f), D = nans(128);
  CHECK_THROWS_WITH(wt::mma16_tile(false, A.data(), B.data(), C.data(), D.data(), Bug::LaneSkipsMma),
                    Contains("warp divergence") && Contains("lane 5 returned") && Contains("mma.m16n8k16.bf16"));
}

TEST_CASE("emu warp: ldmatrix gives the PTX fragment layout", "[emu][warp][ldmatrix]") {
  // Element (r, c) of the 16x16 tile holds r * 16 + c, so each register names its source.
  std::vector<uint16_t> tile(256);
  for (int i = 0; i < 256; ++i) tile[i] = uint16_t(i);
  for (int num : {1, 2, 4})
    for (bool trans : {false, true}) {
      INFO("x" << num << (trans ? ".trans" : ""));
      std::vector<uint32_t> out(128, 0xDEADBEEF);
      wt::ldmatrix_fragments(tile.data(), num, trans, out.data());
      CHECK(out == ldmatrix_expected(num, trans));
    }
  // Spot checks read off the PTX ISA's ldmatrix figure: lane 0 holds row 0, columns 0-1;
  // lane 5 row 1, columns 2-3; lane 31 row 7, columns 6-7.
  std::vector<uint32_t> out(128);
  wt::ldmatrix_fragments(tile.data(), 1, false, out.data());
  CHECK(out[0 * 4] == (0u | 1u << 16));
  CHECK(out[5 * 4] == (18u | 19u << 16));
  CHECK(out[31 * 4] == (118u | 119u << 16));
}

TEST_CASE("emu warp: ldmatrix rejects rows outside shared memory or misaligned", "[emu][warp][ldmatrix]") {
  std::vector<uint16_t> tile(256, 0);
  std::vector<uint32_t> out(128);
  for (int num : {1, 4}) {
    INFO("x" << num);
    CHECK_THROWS_WITH(wt::ldmatrix_fragments(tile.data(), num, false, out.data(), Bug::MisalignedRow),
                      Contains("lane 0") && Contains("not 16-byte aligned") && Contains("tile_s"));
    CHECK_THROWS_WITH(wt::ldmatrix_fragments(tile.data(), num, true, out.data(), Bug::RowInGlobalMemory),
                      Contains("lane 3") && Contains("not inside any __shared__ array"));
    CHECK_THROWS_WITH(wt::ldmatrix_fragments(tile.data(), num, false, out.data(), Bug::RowPastArrayEnd),
                      Contains("lane " + std::to_string(8 * num - 1)) && Contains("run past the end of `tile_s`"));
  }
}

TEST_CASE("emu warp: cp.async + ldmatrix + mma compute a 32x16 tile", "[emu][warp][ldmatrix][mma][cp_async]") {
  DD_TEST_RANDOM(rng);
  for (bool f16 : {false, true}) {
    INFO((f16 ? "f16" : "bf16"));
    const Half16 A = random_16bit(rng, 32 * 32, f16), B = random_16bit(rng, 32 * 16, f16);
    const std::vector<float> C = as_float(rng.normal_f32(32 * 16));
    std::vector<float> D = nans(32 * 16);
    wt::ldmatrix_mma(f16, A.bits.data(), B.bits.data(), C.data(), D.data());
    // Two mma of K = 16 chained through the accumulator: fp32 sums of 33 terms, as K = 32.
    CHECK(mma_errors(D, A.value, B.value, C, 32, 16, 32) == 0);
    // Planted: B without .trans feeds B's transpose to the mma.
    std::vector<float> W = nans(32 * 16);
    wt::ldmatrix_mma(f16, A.bits.data(), B.bits.data(), C.data(), W.data(), Bug::NoTransB);
    CHECK(mma_errors(W, A.value, B.value, C, 32, 16, 32) > 256);
  }
}

TEST_CASE("emu warp: cp.async pipelines deliver every tile after its wait", "[emu][warp][cp_async]") {
  DD_TEST_RANDOM(rng);
  for (int stages : {2, 3})
    for (int tiles : {1, 2, 5}) {
      INFO(stages << " stages, " << tiles << " tiles");
      const std::vector<float> src = as_float(rng.normal_f32(128 * tiles));
      const std::vector<float> want = pipeline_expected(src, tiles);
      std::vector<float> out = nans(128 * tiles);
      wt::cp_async_pipeline(stages, src.data(), tiles, out.data());
      CHECK(out == want);  // the same float operations: exact
      // Planted: reading a stage before its group is waited for reads the NaN the
      // emulator leaves in a destination until the copy retires.
      for (Bug bug : {Bug::NoWait, Bug::WaitTooLoose}) {
        std::vector<float> bad = nans(128 * tiles);
        wt::cp_async_pipeline(stages, src.data(), tiles, bad.data(), bug);
        CHECK(any_nan(bad));
      }
    }
}

TEST_CASE("emu warp: cp.async zero-fill gives halos of zeros", "[emu][warp][cp_async]") {
  DD_TEST_RANDOM(rng);
  // 133 and 65: a last chunk with 1 valid float (src_bytes 4); 8: one block, both halos outside.
  for (int n : {133, 64, 65, 8}) {
    INFO("n = " << n);
    const std::vector<float> x = as_float(rng.normal_f32(n));
    const std::vector<float> want = halo_expected(x);
    std::vector<float> out = nans(n);
    wt::cp_async_halo(x.data(), n, out.data());
    CHECK(out == want);  // the same float additions in the same order: exact
    // Planted: halo chunks copied from the edge instead of zero-filled.
    std::vector<float> bad = nans(n);
    wt::cp_async_halo(x.data(), n, bad.data(), Bug::ClampedHalo);
    CHECK(bad != want);
  }
}

TEST_CASE("emu warp: shuffles and votes match a per-warp reference", "[emu][warp][shfl]") {
  DD_TEST_RANDOM(rng);
  const int threads = 64;
  // Small integers: every sum is exact in any order.
  std::vector<float> x(threads);
  for (float& v : x) v = float(rng.uniform_int(-8, 8));
  std::vector<float> out = nans(7 * threads);
  std::vector<uint32_t> bits(3 * threads, 0xDEADBEEF);
  wt::warp_shuffles(x.data(), threads, out.data(), bits.data());
  CHECK(shuffle_mismatch(x, out, bits) == "");
}

TEST_CASE("emu warp: a lane that is elsewhere during a shuffle is warp divergence", "[emu][warp][shfl]") {
  std::vector<float> x(64, 1.0f), out(7 * 64);
  std::vector<uint32_t> bits(3 * 64);
  auto run = [&](Bug bug) { wt::warp_shuffles(x.data(), 64, out.data(), bits.data(), bug); };
  CHECK_THROWS_WITH(run(Bug::LaneSkipsShuffle), Contains("warp divergence") && Contains("warp 0") &&
                                                     Contains("lane 7 at __shfl_down_sync") &&
                                                     Contains("lanes 8-31 at __shfl_xor_sync"));
  CHECK_THROWS_WITH(run(Bug::LaneAtBarrier), Contains("warp divergence") && Contains("lane 7 at __syncthreads()"));
  CHECK_THROWS_WITH(run(Bug::SplitCallSites), Contains("warp divergence") && Contains("lanes 0-15 at __shfl_up_sync") &&
                                                   Contains("lanes 16-31 at __shfl_up_sync"));
  CHECK_THROWS_WITH(run(Bug::LaneReturnsEarly), Contains("warp divergence") && Contains("lane 31 returned"));
  CHECK_THROWS_WITH(run(Bug::MaskWithoutSelf), Contains("leaves out the calling lane") && Contains("lane 0"));
  // Not a planted bug: a partial last warp (48 threads) shuffling with the full
  // mask reads lanes that do not exist, which the hardware leaves undefined: NaN here.
  std::vector<float> x48(48, 1.0f), out48 = nans(7 * 48);
  std::vector<uint32_t> bits48(3 * 48);
  wt::warp_shuffles(x48.data(), 48, out48.data(), bits48.data());
  CHECK(out48[0] == 32.0f);            // warp 0 is whole
  CHECK(std::isnan(out48[7 * 32]));    // warp 1: lane 0 added lane 16, which is not there
}

TEST_CASE("emu warp: dynamic shared memory above 48 KB needs cudaFuncSetAttribute", "[emu][warp][smem]") {
  dd_emu::reset_func_attributes();
  auto reversed = [](int n, int attribute) {
    std::vector<float> x(n), out = nans(n);
    for (int i = 0; i < n; ++i) x[i] = float(i);
    wt::dynamic_smem_reverse(x.data(), n, out.data(), attribute);
    for (int i = 0; i < n; ++i)
      if (out[i] != float(n - 1 - i)) return false;
    return true;
  };
  CHECK(reversed(1000, -1));
  CHECK(reversed(12288, -1));  // exactly 48 KB: no attribute needed
  // Planted: 64 KB without the attribute, and with one too small.
  CHECK_THROWS_WITH(reversed(16384, -1), Contains("65536 bytes of dynamic shared memory") &&
                                             Contains("cudaFuncSetAttribute") && Contains("reverse_kernel"));
  CHECK_THROWS_WITH(reversed(16384, 32768), Contains("it was set to 32768"));
  CHECK(reversed(16384, 65536));
  // Beyond what a block can have, whatever the attribute says.
  CHECK_THROWS(reversed(16384, 300 * 1024));
  CHECK_THROWS_WITH(reversed(60000, 227 * 1024), Contains("more than the 232448"));
  dd_emu::reset_func_attributes();
}

TEST_CASE("emu warp: static and dynamic shared memory together above 48 KB need cudaFuncSetAttribute",
          "[emu][warp][smem]") {
  dd_emu::reset_func_attributes();
  auto right = [](int n, int attribute) {
    std::vector<float> out = nans(256);
    wt::static_and_dynamic_smem(n, out.data(), attribute);
    for (int t = 0; t < 256; ++t)
      if (out[t] != float(t + n)) return false;
    return true;
  };
  CHECK(right(2048, -1));  // 40 KB + 8 KB: exactly 48 KB
  // Planted: 40 KB + 12 KB, each within 48 KB on its own, and the opt-in then lets it run.
  CHECK_THROWS_WITH(right(3072, -1), Contains("40960 bytes of static __shared__ and 12288 of dynamic") &&
                                         Contains("static_dynamic_kernel"));
  CHECK(right(3072, 12288));
  dd_emu::reset_func_attributes();
}

// The two thread orders (tests/support/cuda_emulation.h): a broadcast read with
// no barrier after the write is right in the forward order and NaN in the
// reverse one; a static __shared__ value summed into before being zeroed reads
// the NaN the emulator fills it with, in either order and in a one-block launch;
// a block that reads another block's output is right in one block order only.
TEST_CASE("emu warp: a missing barrier, an unzeroed shared total or a block-order dependency is caught by one of the two orders",
          "[emu][warp][smem]") {
  struct Restore {
    dd_emu::Schedule was = dd_emu::schedule();
    ~Restore() { dd_emu::set_schedule(was); }
  } restore;
  const int blocks = 3, threads = 96;
  std::vector<float> x(blocks * threads);
  for (int i = 0; i < blocks * threads; ++i) x[i] = float(i % 7) - 2.0f;
  // wrong(out): how many outputs differ from their block's sum (exact: small integers).
  auto wrong = [&](const std::vector<float>& got, int nblocks) {
    int bad = 0;
    for (int b = 0; b < nblocks; ++b) {
      float sum = 0.0f;
      for (int t = 0; t < threads; ++t) sum += x[b * threads + t];
      for (int t = 0; t < threads; ++t) bad += !(got[b * threads + t] == sum);
    }
    return bad;
  };
  for (dd_emu::Schedule order : {dd_emu::Schedule::Forward, dd_emu::Schedule::Reverse}) {
    const bool reverse = order == dd_emu::Schedule::Reverse;
    INFO((reverse ? "reverse" : "forward"));
    dd_emu::set_schedule(order);
    std::vector<float> out = nans(blocks * threads);
    wt::block_totals(x.data(), blocks, threads, out.data());
    CHECK(wrong(out, blocks) == 0);

    // NaN outputs: read from shared memory the block never wrote, which the emulator fills with NaN.
    auto nan_count = [](const std::vector<float>& got) {
      return int(std::count_if(got.begin(), got.end(), [](float v) { return std::isnan(v); }));
    };
    // Planted: the forward order runs thread 0 (the writer) first and hides the race.
    out = nans(blocks * threads);
    wt::block_totals(x.data(), blocks, threads, out.data(), Bug::BroadcastWithoutBarrier);
    CHECK(wrong(out, blocks) == (reverse ? blocks * (threads - 1) : 0));
    CHECK(nan_count(out) == (reverse ? blocks * (threads - 1) : 0));

    // Planted: a block reads what the next block writes; only the forward order runs that one first.
    std::vector<float> chain = nans(5);
    wt::block_chain(5, chain.data());
    CHECK(nan_count(chain) == (reverse ? 4 : 0));
    if (!reverse) CHECK(chain[0] == 5.0f);

    // Planted: NaN, not the total an earlier block or launch left there.
    out = nans(threads);
    wt::block_totals(x.data(), 1, threads, out.data(), Bug::UninitializedTotal);
    CHECK(nan_count(out) == threads);
  }
}

TEST_CASE("emu warp: a block larger than the kernel's __launch_bounds__, or above 256 threads without one, throws",
          "[emu][warp][launch]") {
  std::vector<float> out = nans(96);
  wt::bounded_iota(64, out.data());
  for (int t = 0; t < 64; ++t) CHECK(out[t] == float(t));
  // Planted: 96 threads, above the kernel's __launch_bounds__(64).
  CHECK_THROWS_WITH(wt::bounded_iota(96, out.data()),
                    Contains("bounded_kernel") && Contains("96 threads") && Contains("__launch_bounds__(64)"));
  // Planted: 512 threads a block from a kernel with no __launch_bounds__ at all.
  std::vector<float> x(4 * 512, 1.0f), sums = nans(512);
  wt::float4_sums(x.data(), 256, sums.data());
  CHECK_THROWS_WITH(wt::float4_sums(x.data(), 512, sums.data()),
                    Contains("float4_sums_kernel") && Contains("declares no __launch_bounds__"));
}

// The emulated kernels are built with -fsanitize=alignment (tests/emu/CMakeLists.txt): a vector
// load from an address the device would fault on ("misaligned address") stops the run here too.
TEST_CASE("emu warp: float4 loads from 16-byte aligned addresses", "[emu][warp][align]") {
  alignas(16) float x[4 * 8 + 4];
  for (int i = 0; i < 4 * 8 + 4; ++i) x[i] = float(i);
  std::vector<float> out = nans(8);
  wt::float4_sums(x, 8, out.data());
  for (int t = 0; t < 8; ++t) CHECK(out[t] == float(16 * t + 6));
}

// Planted, run only by ctest's emu_misaligned_load_is_caught, which expects the sanitizer's report
// and the stop: the same loads one float past the alignment.
TEST_CASE("emu warp planted: a float4 load 4 bytes past its alignment", "[.emu_planted_misaligned]") {
  alignas(16) float x[4 * 8 + 4] = {};
  std::vector<float> out = nans(8);
  wt::float4_sums(x + 1, 8, out.data());
}

// Planted, run only by ctest's emu_out_of_bounds_read_is_caught: the emulated kernels are built with
// AddressSanitizer, and a host tensor's bytes past its end are unaddressable under it
// (engine/tensor.cpp), so this read of 8 floats from a 7-float tensor is reported and stops the run.
TEST_CASE("emu warp planted: a kernel reads one float past a tensor", "[.emu_planted_out_of_bounds]") {
  dd::Tensor x = dd::Tensor::zeros({7});
  std::vector<float> out = nans(2);
  wt::float4_sums(x.data<float>(), 2, out.data());
}

namespace {
void count_kernel(int* n) { ++*n; }
}  // namespace

TEST_CASE("emu warp: launch shapes the device refuses throw", "[emu][warp][launch]") {
  int n = 0;
  dd_emu::launch(count_kernel, dd_emu::Dim3(2, 3, 1), dd_emu::Dim3(2, 2, 64), &n);
  CHECK(n == 2 * 3 * 2 * 2 * 64);
  // Planted: each limit of the device's launch configuration, one past it.
  CHECK_THROWS_WITH(dd_emu::launch(count_kernel, 1, dd_emu::Dim3(1, 1, 65), &n), Contains("block z above 64"));
  CHECK_THROWS_WITH(dd_emu::launch(count_kernel, 1, dd_emu::Dim3(1, 1025, 1), &n),
                    Contains("invalid launch configuration"));
  CHECK_THROWS_WITH(dd_emu::launch(count_kernel, 1, dd_emu::Dim3(64, 17, 1), &n),
                    Contains("invalid launch configuration"));
  CHECK_THROWS_WITH(dd_emu::launch(count_kernel, dd_emu::Dim3(1, 65536, 1), 1, &n), Contains("grid y/z above 65535"));
  CHECK_THROWS_WITH(dd_emu::launch(count_kernel, dd_emu::Dim3(2147483648u, 1, 1), 1, &n),
                    Contains("grid x above 2^31-1"));
  CHECK_THROWS_WITH(dd_emu::launch(count_kernel, dd_emu::Dim3(0, 1, 1), 1, &n), Contains("invalid launch configuration"));
  CHECK(n == 2 * 3 * 2 * 2 * 64);
}
