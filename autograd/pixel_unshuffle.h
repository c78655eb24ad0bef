#pragma once
#include "autograd/var.h"

namespace dd::ag {

Var pixel_unshuffle(const Var& x);  // [B,H,W,C] -> [B,H/2,W/2,4C], einops channel order

}  // namespace dd::ag
