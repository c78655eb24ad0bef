#pragma once
#include "autograd/var.h"

namespace dd::ag {

// x [B, positions..., C] with [B, C] vectors broadcast over the positions.
Var add_bc(const Var& x, const Var& v);
Var mul_bc(const Var& x, const Var& v);
Var scale_shift(const Var& x, const Var& scale, const Var& shift);  // x * (scale + 1) + shift

}  // namespace dd::ag
