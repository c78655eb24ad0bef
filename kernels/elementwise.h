#pragma once
// Same-shape elementwise arithmetic and whole-tensor reductions: the glue of
// the autograd (gradient accumulation, residual adds) and of the optimizer.
#include "engine/tensor.h"

namespace dd::kernels {

Tensor add(const Tensor& a, const Tensor& b);              // a + b
Tensor sub(const Tensor& a, const Tensor& b);              // a - b
Tensor mul(const Tensor& a, const Tensor& b);              // a * b
Tensor affine(const Tensor& a, float alpha, float beta);   // alpha * a + beta
void axpy_(Tensor& y, float alpha, const Tensor& x);       // y += alpha * x, in place
void scale_(Tensor& y, float alpha);                       // y *= alpha, in place
double sum(const Tensor& a);                               // sum of all elements
double sum_squares(const Tensor& a);                       // sum of a^2

namespace cpu {
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor affine(const Tensor& a, float alpha, float beta);
void axpy_(Tensor& y, float alpha, const Tensor& x);
void scale_(Tensor& y, float alpha);
double sum(const Tensor& a);
double sum_squares(const Tensor& a);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor affine(const Tensor& a, float alpha, float beta);
void axpy_(Tensor& y, float alpha, const Tensor& x);
void scale_(Tensor& y, float alpha);
double sum(const Tensor& a);
double sum_squares(const Tensor& a);
}  // namespace cuda
#endif

}  // namespace dd::kernels
