#pragma once
#include "autograd/var.h"

namespace dd::ag {

Var upsample2x(const Var& x);  // nearest, [B,H,W,C] -> [B,2H,2W,C]

}  // namespace dd::ag
