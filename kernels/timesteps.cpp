#include "kernels/timesteps.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor draw_timesteps(int64_t B, int64_t T, uint64_t seed, PhiloxOffset offset, Device dev) {
  DD_CHECK(B >= 1, "draw_timesteps: batch size ", B, " must be at least 1");
  DD_CHECK(T >= 1 && T < (int64_t(1) << 24), "draw_timesteps: T = ", T, " must be in [1, 2^24)");
  DD_DISPATCH(dev, draw_timesteps, B, T, seed, offset, dev);
}

Tensor gather_timesteps(const Tensor& table, const Tensor& t) {
  DD_CHECK(table.defined() && table.ndim() == 1 && table.numel() >= 1, "gather_timesteps: table ", describe(table),
           " must be a non-empty [T] tensor");
  DD_CHECK(t.defined() && t.ndim() == 1 && t.numel() >= 1, "gather_timesteps: timesteps ", describe(t),
           " must be a non-empty [B] tensor");
  DD_DISPATCH(common_device("gather_timesteps", {&table, &t}), gather_timesteps, table, t);
}

Tensor broadcast_timestep(const Tensor& t, int64_t B) {
  DD_CHECK(t.defined() && t.numel() == 1 && t.dtype() == DType::F32, "broadcast_timestep: t ",
           t.defined() ? describe(t) : std::string("undefined"), " must be one float");
  DD_CHECK(B >= 1, "broadcast_timestep: batch size ", B, " must be at least 1");
  DD_DISPATCH(t.device(), broadcast_timestep, t, B);
}

}  // namespace dd::kernels
