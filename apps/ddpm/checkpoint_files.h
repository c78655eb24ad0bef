#pragma once
// The training states a run folder keeps (--keep-checkpoints K, default 2): checkpoint.safetensors,
// the newest, and up to K - 1 older ones, checkpoint.step_NNNNNNN.safetensors. Before each save the
// newest is hard-linked under its step's name (no bytes copied) and the save then replaces
// checkpoint.safetensors atomically, so at every moment a whole newest state exists. --resume takes
// the newest one that loads and verifies (engine/safetensors.h checks each file's CRC-32C), saying
// which it skipped and why.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/safetensors.h"

namespace dd::ddpm {

// The older copy's name for the state at `step` beside `newest` (…/checkpoint.step_0000123.safetensors).
std::string checkpoint_step_path(const std::string& newest, int64_t step);

// Every training state beside (and including) newest, newest first: newest itself when it exists,
// then the older copies by step, descending.
std::vector<std::string> checkpoint_candidates(const std::string& newest);

// Before a save replaces newest (holding the state at newest_step): keep it as an older copy when
// keep > 1, then remove older copies beyond the keep - 1 newest. keep >= 1.
void rotate_checkpoints(const std::string& newest, int64_t newest_step, int keep);

// The newest candidate that loads; *used gets its path. Each one skipped is reported on log with
// the reason (corrupted, truncated, ...). Throws naming every failure when none loads.
SafeTensorsFile load_newest_checkpoint(const std::string& newest, std::FILE* log, std::string* used);

}  // namespace dd::ddpm
