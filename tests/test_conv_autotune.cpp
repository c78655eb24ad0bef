// kernels/conv_autotune.h, the table behind --conv-autotune, with stand-in options timed on the CPU
// (the tensor-core options themselves: tests/emu/test_emu_conv2d_tc_tune.cpp). The options sleep
// 1 ms or 40 ms: the fast one must win every run (the best of three runs of 1 ms would have to
// exceed 40 ms each time to lose).
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "engine/context.h"
#include "engine/error.h"
#include "kernels/conv_autotune.h"
#include "tests/support/conv_autotune_on.h"

using namespace dd;

namespace {

void nap(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

TEST_CASE("conv autotune picks the fastest option, remembers it and passes over failing ones", "[autotune]") {
  test::ConvAutotuneOn on;
  const std::vector<std::string> labels{"slow", "throws", "fast", "slower"};
  std::vector<int> runs(labels.size(), 0);
  auto run = [&](int i) {
    ++runs[i];
    if (i == 1) DD_FAIL("this shape cannot take option ", labels[i]);
    nap(i == 2 ? 1 : 40);
  };
  CHECK(kernels::conv_autotune_choice("fwd k", labels, run, Device::CPU) == "fast");
  // Each working option: a warm-up and three timed runs; the failing one once.
  CHECK(runs == std::vector<int>{4, 1, 4, 4});
  CHECK(kernels::conv_autotune_stats().tuned == 1);
  CHECK(kernels::conv_autotune_stats().timed_runs == 12);
  // At least the naps: 2 x 4 x 40 ms + 4 x 1 ms.
  CHECK(kernels::conv_autotune_stats().seconds >= 0.324);
  CHECK(kernels::conv_autotune_choice("fwd k", labels, run, Device::CPU) == "fast");
  CHECK(runs == std::vector<int>{4, 1, 4, 4});
  CHECK(kernels::conv_autotune_stats().hits == 1);
  // A remembered choice that is not among this call's options is timed again.
  CHECK(kernels::conv_autotune_choice("fwd k", {"slow", "other"}, [&](int i) { nap(i == 0 ? 40 : 1); }, Device::CPU) ==
        "other");
  CHECK_THROWS_WITH(kernels::conv_autotune_choice("fwd j", {"a"}, [](int) { DD_FAIL("no"); }, Device::CPU),
                    Catch::Contains("every option failed") && Catch::Contains("fwd j"));
}

TEST_CASE("conv autotune does nothing when off or inside a graph capture", "[autotune]") {
  kernels::clear_conv_autotune();
  int runs = 0;
  auto run = [&](int) { ++runs; };
  CHECK(kernels::conv_autotune_choice("k", {"a", "b"}, run, Device::CPU).empty());
  test::ConvAutotuneOn on;
  current_context().set_capturing(true);
  const std::string got = kernels::conv_autotune_choice("k", {"a", "b"}, run, Device::CPU);
  current_context().set_capturing(false);
  CHECK(got.empty());
  CHECK(runs == 0);
  CHECK(kernels::conv_autotune_table().empty());
}

TEST_CASE("conv autotune's table is written sorted, read back, and a bad line named", "[autotune]") {
  test::ConvAutotuneOn on;
  kernels::conv_autotune_choice("zeta", {"z"}, [](int) {}, Device::CPU);
  kernels::conv_autotune_choice("alpha", {"a"}, [](int) {}, Device::CPU);
  const std::string table = kernels::conv_autotune_table();
  REQUIRE(table.rfind("alpha\ta\t", 0) == 0);
  REQUIRE(table.find("\nzeta\tz\t") != std::string::npos);
  kernels::clear_conv_autotune();
  kernels::load_conv_autotune_table(table + "\n", "run/conv_autotune.tsv");
  int runs = 0;
  CHECK(kernels::conv_autotune_choice("zeta", {"y", "z"}, [&](int) { ++runs; }, Device::CPU) == "z");
  CHECK(runs == 0);
  CHECK(kernels::conv_autotune_table() == "alpha\ta\t-1\nzeta\tz\t-1\n");
  for (const char* bad : {"key only", "key\tlabel", "\tlabel\t1", "key\t\t1", "a\tb\tc\td"})
    CHECK_THROWS_WITH(kernels::load_conv_autotune_table(str_cat("k\tt\t1\n", bad, "\n"), "run/conv_autotune.tsv"),
                      Catch::Contains("run/conv_autotune.tsv:2") && Catch::Contains("key<TAB>option<TAB>ms"));
}
