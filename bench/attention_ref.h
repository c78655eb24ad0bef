#pragma once
// A textbook softmax attention on cuBLAS, the yardstick for our flash-style kernel
// (kernels/attention.h, same layouts): S = scale Q K^T and P = softmax(S) are written to global
// memory ([B·heads, N, N]), O = P V; the backward is dV = P^T dO, dP = dO V^T,
// dS = P ∘ (dP - rowsum(P ∘ dP)), dQ = scale dS K, dK = scale dS^T Q. Batched SGEMMs over
// B·heads with pointer arrays built once; pedantic fp32 (no TF32), like ours.
#include <cstdint>
#include <memory>

#include "engine/tensor.h"

namespace dd::bench {

class RefAttention {
 public:
  // Binds the buffers: qkv [B, N, 3·heads·dh], dy [B, N, heads·dh] (CUDA tensors).
  RefAttention(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
  ~RefAttention();
  void forward();   // out = attention(qkv), P kept
  void backward();  // dqkv from dy and P (run forward first)
  const Tensor& out() const;
  const Tensor& dqkv() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dd::bench
