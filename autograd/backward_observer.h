#pragma once
// Watching a backward pass from outside the ops: which closure is running and which parameter
// gradients it adds into. The data-parallel GPU path uses it to start each gradient bucket's
// all-reduce as soon as the backward is done with that bucket (apps/ddpm/grad_sync.h). One observer
// per thread at most; none by default, and then the backward costs one pointer test per closure.
#include <cstddef>

#include "engine/tensor.h"

namespace dd::ag {

class BackwardObserver {
 public:
  virtual ~BackwardObserver() = default;
  // Tape::backward is about to run `closures` closures.
  virtual void begin(std::size_t closures) = 0;
  // A gradient is being added into a variable's grad buffer (a view into a parameter set's gradient
  // arena, models/params.h); the add is queued on the current stream right after this call.
  virtual void accumulating(const Tensor& grad_buffer) = 0;
  // Closure `index` (0 = the first to run) has run: everything it queued is on the current stream.
  virtual void ran(std::size_t index) = 0;
};

// The calling thread's observer (nullptr: none).
void set_backward_observer(BackwardObserver* observer);
BackwardObserver* backward_observer();

}  // namespace dd::ag
