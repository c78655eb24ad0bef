#include <catch2/catch.hpp>

#include <cmath>

#include "engine/error.h"
#include "engine/tensor.h"

using namespace dd;

TEST_CASE("tensor basics: shape, copy semantics, reshape", "[tensor]") {
  Tensor t = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.numel() == 6);
  CHECK(t.dim(-1) == 3);
  CHECK(t.dim(0) == 2);
  Tensor shallow = t;
  shallow.data()[0] = 10;
  CHECK(t.data()[0] == 10);  // copies share storage, like torch.Tensor
  Tensor deep = t.clone();
  deep.data()[1] = 20;
  CHECK(t.data()[1] == 2);
  Tensor r = t.reshape({3, 2});
  CHECK(r.same_storage(t));
  CHECK(Tensor::scalar(2.5f).item() == 2.5f);
  CHECK(Tensor::zeros({0, 4}).numel() == 0);
}

TEST_CASE("tensor errors name the operation and the shapes", "[tensor]") {
  Tensor t = Tensor::zeros({2, 3});
  REQUIRE_THROWS_AS(t.reshape({4, 2}), Error);
  REQUIRE_THROWS_WITH(t.reshape({4, 2}), Catch::Contains("reshape") && Catch::Contains("[2,3]") &&
                                              Catch::Contains("[4,2]"));
  REQUIRE_THROWS_WITH(t.dim(2), Catch::Contains("dim(2)") && Catch::Contains("[2,3]"));
  REQUIRE_THROWS_WITH(t.item(), Catch::Contains("item()"));
  REQUIRE_THROWS_WITH(Tensor::from_vector({2, 2}, {1, 2, 3}), Catch::Contains("[2,2]"));
  REQUIRE_THROWS_WITH(parse_device("tpu"), Catch::Contains("tpu"));
  // The message carries the source location.
  // The repository-relative file, not the build machine's absolute path.
  REQUIRE_THROWS_WITH(t.item(), Catch::StartsWith("engine/tensor.cpp:"));
}

TEST_CASE("poisoned allocation fills new tensors with NaN", "[tensor]") {
  // The test runner turns poisoning on for every test.
  REQUIRE(poison_new_tensors());
  Tensor t = Tensor::empty({5});
  for (float v : t.to_vector()) CHECK(std::isnan(v));
}

TEST_CASE("cuda tensors fail clearly when there is no device", "[tensor]") {
  if (cuda_available()) return;  // covered by the GPU tests
  REQUIRE_THROWS_AS(Tensor::zeros({2}, Device::CUDA), Error);
}
