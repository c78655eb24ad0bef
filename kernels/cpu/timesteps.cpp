#include "kernels/timesteps.h"

#include "engine/error.h"
#include "engine/philox.h"

namespace dd::kernels::cpu {

Tensor draw_timesteps(int64_t B, int64_t T, uint64_t seed, PhiloxOffset offset, Device) {
  Tensor t = Tensor::empty({B});
  float* pt = t.data();
  for (int64_t b = 0; b < B; ++b)
    pt[b] = static_cast<float>(philox_uniform_int(seed, offset.get() + static_cast<uint64_t>(b), static_cast<uint64_t>(T)));
  return t;
}

Tensor gather_timesteps(const Tensor& table, const Tensor& t) {
  const int64_t T = table.numel(), B = t.numel();
  Tensor out = Tensor::empty({B});
  const float* tab = table.data();
  const float* pt = t.data();
  float* po = out.data();
  for (int64_t b = 0; b < B; ++b) {
    const float v = pt[b];
    DD_CHECK(v >= 0.0f && v < static_cast<float>(T) && v == static_cast<float>(static_cast<int64_t>(v)),
             "gather_timesteps: timestep t[", b, "] = ", v, " is not an integer in [0, ", T, ")");
    po[b] = tab[static_cast<int64_t>(v)];
  }
  return out;
}

Tensor broadcast_timestep(const Tensor& t, int64_t B) { return Tensor::full({B}, t.data()[0]); }

}  // namespace dd::kernels::cpu
