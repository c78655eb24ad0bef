#pragma once
// bench_conv2d --sweep (GPU): each tensor-core kernel of each shape under every tile shape (forward
// and dx also with the halo kernel when K >= 2), and dw also under split counts around the rule's, each validated against the CPU backend before it is
// timed. Prints what the rules in kernels/cuda/conv2d_tc.cu run beside the fastest option found,
// and what a per-shape choice would save over one forward + backward: the data to tune the rules
// from on the next GPU run.
#include <cstdint>
#include <string>
#include <vector>

#include "bench/unet_conv_shapes.h"
#include "engine/context.h"

namespace dd::bench {

#ifdef DD_WITH_CUDA
// Returns false when an option failed validation (it is then not timed, and named on stderr).
bool tensor_core_sweep(Precision prec, const std::vector<ConvShape>& shapes, int64_t B, int warm, int reps,
                       const std::string& only);
#endif

}  // namespace dd::bench
