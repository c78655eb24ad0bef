#pragma once
#include <cstdint>
#include <vector>

#include "autograd/var.h"

namespace dd::ag {

Var concat(const std::vector<Var>& xs);             // along the last dim (torch.cat dim=1 in NCHW)
std::vector<Var> chunk(const Var& x, int64_t n);    // n equal parts of the last dim

}  // namespace dd::ag
