// Tensor dtypes and views on the device: CUDA casts (engine/cuda/cast.cu) give the CPU's bits for
// every pair of dtypes on random inputs with the special values mixed in; fills of every dtype; views.
#include <catch2/catch.hpp>

#include "engine/tensor.h"
#include "tests/support/compare.h"
#include "tests/support/dtype_samples.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: dtype casts give the cpu's bits", "[gpu][dtype]") {
  DD_TEST_RANDOM(rng);
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{300007}}) {
    for (DType from : all_dtypes()) {
      const std::vector<uint8_t> src = dtype_samples(from, n, rng.engine()());
      const Tensor c = Tensor::from_raw({n}, from, src.data());
      const Tensor g = Tensor::from_raw({n}, from, src.data(), Device::CUDA);
      for (DType to : all_dtypes()) {
        INFO(dtype_name(from) << " -> " << dtype_name(to) << ", n = " << n);
        const Tensor gc = g.to(to);
        REQUIRE(gc.device() == Device::CUDA);
        REQUIRE(gc.dtype() == to);
        CHECK(gc.to_bytes() == c.to(to).to_bytes());
        // A view at an odd offset casts its own window.
        if (n > 10) {
          const Tensor gv = Tensor::view_of(g, 3, {n - 10}).to(to);
          CHECK(gv.to_bytes() == Tensor::view_of(c, 3, {n - 10}).to(to).to_bytes());
        }
      }
    }
  }
}

TEST_CASE("gpu: fills, copies and views of every dtype", "[gpu][dtype][view]") {
  for (DType t : all_dtypes()) {
    INFO(dtype_name(t));
    for (float v : {0.0f, -0.0f, 2.5f, -7.75f, 1e6f}) {
      CHECK(Tensor::full({1001}, v, Device::CUDA, t).to_bytes() == Tensor::full({1001}, v, Device::CPU, t).to_bytes());
    }
    Tensor base = Tensor::from_vector({12}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, Device::CUDA, t);
    Tensor v = Tensor::view_of(base, 4, {2, 3});
    CHECK(v.to_vector() == std::vector<float>{4, 5, 6, 7, 8, 9});
    CHECK(v.to(Device::CPU).to_vector() == std::vector<float>{4, 5, 6, 7, 8, 9});
    CHECK(v.clone().storage_offset() == 0);
    v.copy_from(Tensor::from_vector({6}, {-1, -2, -3, -4, -5, -6}));  // float32 host -> this dtype on the device
    Tensor::view_of(base, 0, {2}).fill_(3.0f);
    CHECK(base.to_vector() == std::vector<float>{3, 3, 2, 3, -1, -2, -3, -4, -5, -6, 10, 11});
    Tensor::view_of(base, 0, {5}).copy_from(Tensor::view_of(base, 2, {5}));  // overlapping
    CHECK(base.to_vector() == std::vector<float>{2, 3, -1, -2, -3, -2, -3, -4, -5, -6, 10, 11});
    CHECK(Tensor::view_of(base, 11, {1}).item() == 11.0f);
  }
}
