#pragma once
#include "autograd/var.h"

namespace dd::ag {

Var silu(const Var& x);
Var gelu(const Var& x);
Var relu(const Var& x);

}  // namespace dd::ag
