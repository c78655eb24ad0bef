// kernels/op_profile.h: the per-op wall times bench_train_step --profile prints.
#include <catch2/catch.hpp>

#include <thread>

#include "kernels/elementwise.h"
#include "kernels/op_profile.h"
#include "tests/support/compare.h"

using namespace dd;
namespace prof = dd::kernels::op_profile;

namespace {
const prof::Entry* find(const std::vector<prof::Entry>& v, const std::string& op) {
  for (const prof::Entry& e : v)
    if (e.op == op) return &e;
  return nullptr;
}
}  // namespace

TEST_CASE("op_profile: CPU calls are counted and timed only while on", "[op_profile]") {
  const Tensor a = Tensor::full({64, 33}, 1.0f), b = Tensor::full({64, 33}, 2.0f);
  prof::reset();
  (void)kernels::add(a, b);  // off: not recorded
  CHECK(prof::snapshot().empty());

  prof::enable(true);
  for (int i = 0; i < 3; ++i) (void)kernels::add(a, b);
  (void)kernels::mul(a, b);
  prof::enable(false);
  (void)kernels::add(a, b);  // off again
  const std::vector<prof::Entry> v = prof::snapshot();
  const prof::Entry* add = find(v, "add");
  const prof::Entry* mul = find(v, "mul");
  REQUIRE(add != nullptr);
  REQUIRE(mul != nullptr);
  CHECK(add->calls == 3);
  CHECK(mul->calls == 1);
  CHECK(add->seconds >= 0);
  CHECK(v.size() == 2);

  // Sorted by total time, largest first; a scope's time is its wall time.
  prof::reset();
  prof::enable(true);
  {
    const prof::Scope s("slow");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  { const prof::Scope s("fast"); }
  prof::enable(false);
  const std::vector<prof::Entry> w = prof::snapshot();
  REQUIRE(w.size() == 2);
  CHECK(w[0].op == "slow");
  CHECK(w[0].seconds >= 0.019);
  CHECK(w[1].op == "fast");
  prof::reset();
  CHECK(prof::snapshot().empty());
}
