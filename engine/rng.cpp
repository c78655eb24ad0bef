#include "engine/rng.h"

#include "engine/error.h"
#include "engine/philox.h"

namespace dd {

void randn_fill(Tensor& out, uint64_t seed, PhiloxOffset at) {
  DD_CHECK(out.defined(), "randn_fill: undefined tensor");
  const int64_t n = out.numel();
  if (out.device() == Device::CUDA) {
    cuda_rng::randn_fill(out.data(), n, seed, at);
    return;
  }
  const uint64_t offset = at.get();
  float* p = out.data();
  const int64_t blocks = static_cast<int64_t>(philox_blocks(n));
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    float z[4];
    philox_normal4(seed, offset + static_cast<uint64_t>(b), z);
    for (int l = 0; l < 4; ++l) {
      int64_t i = b * 4 + l;
      if (i < n) p[i] = z[l];
    }
  }
}

Tensor randn(const Shape& shape, uint64_t seed, PhiloxOffset offset, Device dev) {
  Tensor t = Tensor::empty(shape, dev);
  randn_fill(t, seed, offset);
  return t;
}

uint64_t Generator::uniform_int(uint64_t n) {
  DD_CHECK(n > 0, "Generator::uniform_int: empty range");
  return philox_uniform_int(seed_, offset_++, n);
}

double Generator::uniform() {
  uint64_t b = offset_++;
  uint64_t x = (static_cast<uint64_t>(philox_u32(seed_, b, 0)) << 21) ^ philox_u32(seed_, b, 1);
  return static_cast<double>(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

#ifndef DD_WITH_CUDA
namespace cuda_rng {
void randn_fill(float*, int64_t, uint64_t, PhiloxOffset) {
  DD_FAIL("randn on cuda: this build has no CUDA backend");
}
}  // namespace cuda_rng
#endif

}  // namespace dd
