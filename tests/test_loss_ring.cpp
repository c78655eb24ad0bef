// The trainer's loss ring (apps/ddpm/loss_ring.h): losses come back in order, the ring refuses to
// overflow or to take a loss of the wrong shape, and a drained ring starts over.
#include <catch2/catch.hpp>

#include "apps/ddpm/loss_ring.h"

using namespace dd;

TEST_CASE("loss ring: drains in order, refuses overflow and bad losses", "[train]") {
  ddpm::LossRing ring(Device::CPU, 3);
  CHECK(ring.drain().empty());
  for (float v : {1.5f, -2.0f, 3.25f}) ring.push(Tensor::scalar(v));
  CHECK(ring.full());
  CHECK_THROWS_WITH(ring.push(Tensor::scalar(9.0f)), Catch::Contains("full (3 losses)"));
  CHECK(ring.drain() == std::vector<float>{1.5f, -2.0f, 3.25f});
  CHECK(ring.pending() == 0);
  ring.push(Tensor::scalar(NAN));
  const std::vector<float> again = ring.drain();
  REQUIRE(again.size() == 1);
  CHECK(std::isnan(again[0]));  // the caller's divergence guard sees it
  CHECK_THROWS_WITH(ring.push(Tensor::zeros({2})), Catch::Contains("expected a one-element loss"));
  CHECK_THROWS_WITH(ddpm::LossRing(Device::CPU, 0), Catch::Contains("capacity must be positive"));
}
