#pragma once
#include <cstdint>

#include "autograd/var.h"
#include "engine/philox.h"

namespace dd::ag {

// torch.nn.Dropout(p) in training (kernels/dropout.h): the mask is Philox at (seed, offset), the
// backward applies the same mask and scale to the gradient. p = 0 returns x itself.
Var dropout(const Var& x, float p, uint64_t seed, PhiloxOffset offset);

}  // namespace dd::ag
