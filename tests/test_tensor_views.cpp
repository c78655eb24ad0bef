// Tensor::view_of: a window into a larger buffer, and every Tensor operation on one.
#include <catch2/catch.hpp>

#include <numeric>

#include "engine/error.h"
#include "engine/tensor.h"

using namespace dd;
using Catch::Contains;

namespace {
Tensor iota(int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0.0f);
  return Tensor::from_vector({n}, v);
}
}  // namespace

TEST_CASE("views alias their base, both ways", "[tensor][view]") {
  Tensor base = iota(10);
  Tensor v = Tensor::view_of(base, 3, {2, 2});
  CHECK(v.storage_offset() == 3);
  CHECK(v.shape() == Shape{2, 2});
  CHECK(v.to_vector() == std::vector<float>{3, 4, 5, 6});
  CHECK(v.same_storage(base));
  CHECK_FALSE(v.storage_unique());
  CHECK_FALSE(base.storage_unique());
  v.data()[0] = 100;  // write through the view ...
  CHECK(base.data()[3] == 100);  // ... read through the base
  base.data()[6] = -6;
  CHECK(v.to_vector() == std::vector<float>{100, 4, 5, -6});
  CHECK(v.data() == base.data() + 3);
  // A view of a view is relative to its own base.
  Tensor vv = Tensor::view_of(v, 1, {2});
  CHECK(vv.storage_offset() == 4);
  CHECK(vv.to_vector() == std::vector<float>{4, 5});
  CHECK(Tensor::view_of(v, 3, {1}).item() == -6);
  // Empty views anywhere inside, including at the very end.
  CHECK(Tensor::view_of(base, 10, {0}).numel() == 0);
  CHECK(Tensor::view_of(base, 10, {0}).to_vector().empty());
}

TEST_CASE("view bounds are checked", "[tensor][view]") {
  Tensor base = Tensor::zeros({3, 4});
  REQUIRE_THROWS_WITH(Tensor::view_of(base, 9, {4}),
                      Contains("view_of") && Contains("offset 9") && Contains("[3,4]") && Contains("12 elements"));
  REQUIRE_THROWS_WITH(Tensor::view_of(base, -1, {2}), Contains("offset -1"));
  REQUIRE_THROWS_WITH(Tensor::view_of(base, 0, {13}), Contains("13 elements"));
  REQUIRE_THROWS_WITH(Tensor::view_of(base, 13, {0}), Contains("offset 13"));
  // A view cannot reach past its own base, even where the storage goes on.
  Tensor v = Tensor::view_of(base, 2, {5});
  REQUIRE_THROWS_WITH(Tensor::view_of(v, 1, {5}), Contains("[5] cpu"));
  REQUIRE_THROWS_WITH(Tensor::view_of(Tensor(), 0, {1}), Contains("undefined"));
}

TEST_CASE("a view keeps its base storage alive", "[tensor][view]") {
  Tensor v;
  {
    Tensor base = iota(8);
    v = Tensor::view_of(base, 5, {3});
  }
  CHECK(v.storage_unique());
  CHECK(v.to_vector() == std::vector<float>{5, 6, 7});
}

TEST_CASE("reshape, clone, copy_from, to(Device), fill_ and casts of a view", "[tensor][view]") {
  Tensor base = iota(12);
  Tensor v = Tensor::view_of(base, 4, {2, 3});

  Tensor r = v.reshape({3, 2});
  CHECK(r.storage_offset() == 4);
  CHECK(r.same_storage(base));
  CHECK(r.to_vector() == std::vector<float>{4, 5, 6, 7, 8, 9});

  Tensor c = v.clone();
  CHECK_FALSE(c.same_storage(base));
  CHECK(c.storage_offset() == 0);
  CHECK(c.storage_unique());
  CHECK(c.to_vector() == v.to_vector());
  Tensor h = v.to(Device::CPU);
  CHECK_FALSE(h.same_storage(base));
  CHECK(h.to_vector() == std::vector<float>{4, 5, 6, 7, 8, 9});

  // Writing into a view touches only its window.
  v.copy_from(Tensor::from_vector({6}, {-1, -2, -3, -4, -5, -6}));
  CHECK(base.to_vector() == std::vector<float>{0, 1, 2, 3, -1, -2, -3, -4, -5, -6, 10, 11});
  Tensor out = Tensor::zeros({2, 3});
  out.copy_from(v);
  CHECK(out.to_vector() == std::vector<float>{-1, -2, -3, -4, -5, -6});
  Tensor::view_of(base, 1, {2}).fill_(7.0f);
  Tensor::view_of(base, 10, {2}).zero_();
  CHECK(base.to_vector() == std::vector<float>{0, 7, 7, 3, -1, -2, -3, -4, -5, -6, 0, 0});

  // Overlapping views of one buffer copy as if through a temporary.
  Tensor::view_of(base, 0, {5}).copy_from(Tensor::view_of(base, 2, {5}));
  CHECK(base.to_vector() == std::vector<float>{7, 3, -1, -2, -3, -2, -3, -4, -5, -6, 0, 0});
  Tensor::view_of(base, 3, {4}).copy_from(Tensor::view_of(base, 2, {4}));
  CHECK(base.to_vector() == std::vector<float>{7, 3, -1, -1, -2, -3, -2, -4, -5, -6, 0, 0});
  Tensor self = Tensor::view_of(base, 8, {2});
  self.copy_from(self);
  CHECK(self.to_vector() == std::vector<float>{-5, -6});

  // Casting a view reads its window; a view of a bf16 buffer is bf16.
  CHECK(Tensor::view_of(base, 7, {3}).to(DType::I32).to_vector() == std::vector<float>{-4, -5, -6});
  Tensor hb = Tensor::from_vector({6}, {1, 2, 3, 4, 5, 6}, Device::CPU, DType::BF16);
  Tensor hv = Tensor::view_of(hb, 2, {2});
  CHECK(hv.dtype() == DType::BF16);
  CHECK(hv.data<bf16>() == hb.data<bf16>() + 2);
  CHECK(hv.nbytes() == 4);
  CHECK(hv.to_vector() == std::vector<float>{3, 4});
  CHECK(hv.to_bytes() == std::vector<uint8_t>{0x40, 0x40, 0x80, 0x40});  // 3.0 = 0x4040, 4.0 = 0x4080
  hv.fill_(-1.0f);
  CHECK(hb.to_vector() == std::vector<float>{1, 2, -1, -1, 5, 6});
}
