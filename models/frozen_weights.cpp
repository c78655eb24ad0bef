#include "models/frozen_weights.h"

#include <map>
#include <tuple>

#include "engine/context.h"

namespace dd::models {

namespace {
struct Cache {
  int depth = 0;
  std::map<std::tuple<const void*, int64_t, int>, Tensor> derived;
};
Cache& cache() {
  thread_local Cache c;
  return c;
}
}  // namespace

FrozenWeights::FrozenWeights() { ++cache().depth; }

FrozenWeights::~FrozenWeights() {
  Cache& c = cache();
  if (--c.depth == 0) c.derived.clear();
}

bool weights_frozen() { return cache().depth > 0; }

Tensor frozen(const Tensor& w, int what, const std::function<Tensor()>& make) {
  Cache& c = cache();
  if (c.depth == 0) return make();
  const auto key = std::make_tuple(static_cast<const void*>(w.data()), w.numel(), what);
  auto it = c.derived.find(key);
  if (it != c.derived.end()) return it->second;
  Tensor t = make();
  if (!current_context().capturing()) c.derived.emplace(key, t);
  return t;
}

}  // namespace dd::models
