#pragma once
// Autotuning of the tensor-core convolutions (the apps' --conv-autotune, as PyTorch's
// cudnn.benchmark): off by default, when the per-shape rules of kernels/cuda/conv2d_tc.cu pick the
// tile, the dw split and the halo kernel. On, the first call of each shape and direction times every
// option on its own operands and remembers the fastest; later calls of that shape, and a CUDA graph
// captured after them, run it. The choices are kept as a table (key, option, time) that a run can
// save and load back, so a resumed run runs the same kernels. Options that split dw's sum
// differently, or take GroupNorm's sums over other row blocks, round differently: with tuning on,
// the results are bitwise reproducible for a given table, not across tables.
//
// Included by emulated kernel files (tests/emu): it must not name the device backend's namespace.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/device.h"

namespace dd::kernels {

void set_conv_autotune(bool on);
bool conv_autotune();

// The option to run for key, one of labels: the one remembered for key (when it is among labels);
// else, when tuning is on and no CUDA graph is being captured, the fastest of labels as timed by
// run(i) on dev (once to warm up, then the best of three: CUDA events on the device, the wall clock
// on the CPU), remembered. An option whose run throws dd::Error is passed over. Returns "" when
// tuning is off, or while a graph is captured and the key is new (the rules run; nothing is
// remembered).
std::string conv_autotune_choice(const std::string& key, const std::vector<std::string>& labels,
                                 const std::function<void(int)>& run, Device dev);

// The remembered choices, sorted by key; as text, a line each: "key<TAB>option<TAB>ms".
struct ConvAutotuneEntry {
  std::string key, option;
  double ms = -1;  // the chosen option's time; -1: loaded from a table
};
std::vector<ConvAutotuneEntry> conv_autotune_entries();
// The first entry whose key starts with prefix + " " (keys start with the direction: "fwd",
// "fwd+sums", "dx", "dw"), or nullopt.
std::optional<ConvAutotuneEntry> conv_autotune_entry(const std::string& prefix);
std::string conv_autotune_table();
// Adds the choices of a table as conv_autotune_table writes it; `what` (a file) names the source in
// the error a malformed line gets.
void load_conv_autotune_table(const std::string& text, const std::string& what);
void clear_conv_autotune();

struct ConvAutotuneStats {
  int64_t tuned = 0;       // keys timed
  int64_t timed_runs = 0;  // option runs spent timing (the warm-ups included)
  int64_t hits = 0;        // calls answered from the table
  double seconds = 0;      // wall time spent choosing (every option's runs and the waits for them)
};
ConvAutotuneStats conv_autotune_stats();

}  // namespace dd::kernels
