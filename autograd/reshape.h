#pragma once
#include "autograd/var.h"

namespace dd::ag {

// The same elements under another shape (numel unchanged); the gradient is reshaped back.
Var reshape(const Var& x, const Shape& shape);

}  // namespace dd::ag
