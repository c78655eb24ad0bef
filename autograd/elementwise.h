#pragma once
#include "autograd/var.h"

namespace dd::ag {

Var add(const Var& a, const Var& b);                 // same shapes (residual connections)
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var affine(const Var& a, float alpha, float beta);   // alpha * a + beta
Var sum(const Var& a);                               // scalar sum of all elements

}  // namespace dd::ag
