#pragma once
#include <cstdint>

#include "autograd/var.h"

namespace dd::ag {

// SinusoidalPositionEmbeddings(dim): t [B] -> [B, dim] (differentiable in t).
Var time_embedding(const Var& t, int64_t dim);

}  // namespace dd::ag
