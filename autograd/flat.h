#pragma once
// The test the optimizer, the EMA and the clip use before running over a flat buffer (a
// models::ParamSet arena) instead of tensor by tensor: the per-tensor list must be exactly the
// buffer cut into consecutive views, in order, so one pass over the buffer touches the same
// elements with the same arithmetic.
#include <vector>

#include "engine/tensor.h"

namespace dd::ag {

// True when parts are back-to-back views of flat's storage, in order, covering flat exactly.
template <class Get>
bool tiles_flat(const Tensor& flat, std::size_t count, Get part) {
  if (!flat.defined()) return false;
  int64_t off = flat.storage_offset();
  for (std::size_t i = 0; i < count; ++i) {
    const Tensor& t = part(i);
    if (!t.defined() || !t.same_storage(flat) || t.dtype() != flat.dtype() || t.storage_offset() != off) return false;
    off += t.numel();
  }
  return off == flat.storage_offset() + flat.numel();
}

inline bool tiles_flat(const Tensor& flat, const std::vector<Tensor>& parts) {
  return tiles_flat(flat, parts.size(), [&](std::size_t i) -> const Tensor& { return parts[i]; });
}

}  // namespace dd::ag
