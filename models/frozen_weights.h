#pragma once
// Weights that stay fixed for a while: a sampling chain calls the network hundreds of times with
// the same weights, and the U-Net standardises every conv weight on each call (11% of a CPU
// sampling step of the CIFAR-10 preset, bench_train_step --sample --profile, 2026-11-27). While a
// FrozenWeights scope is open on this thread, frozen() hands back what its first call computed for
// the same weight tensor. The samplers open one around their loops; whoever opens one promises
// that no weight changes until it closes (the cache is keyed by the weight's storage, not its
// values). Scopes nest; the cache is dropped when the outermost closes.
#include <functional>

#include "engine/tensor.h"

namespace dd::models {

class FrozenWeights {
 public:
  FrozenWeights();
  ~FrozenWeights();
  FrozenWeights(const FrozenWeights&) = delete;
  FrozenWeights& operator=(const FrozenWeights&) = delete;
};

bool weights_frozen();

// make() of the weight w, computed once per scope while one is open (and not inside a CUDA graph
// capture, whose allocations belong to the graph: there it is computed, not kept), else each call.
// `what` tells two derived tensors of the same weight apart.
Tensor frozen(const Tensor& w, int what, const std::function<Tensor()>& make);

}  // namespace dd::models
