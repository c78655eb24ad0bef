#pragma once
// Signals for long jobs, as a cluster sends them (issue 17):
//   - the first SIGINT or SIGTERM asks the job to stop: training finishes its step, writes a
//     consistent checkpoint and exits 130 (SIGINT) or 143 (SIGTERM) with one line saying how to
//     resume; a sampler stops after its current step and writes no partial grid;
//   - a second SIGINT exits at once (exit code 130) without touching any saved file (every file is
//     written temp + rename, so whatever is on disk is whole);
//   - SIGUSR1 asks training to write a checkpoint and carry on (Slurm's --signal before preemption).
// The handlers only set flags; the loops poll them between steps.
#include <stdexcept>
#include <string>

namespace dd::ddpm {

// Installs the handlers for its lifetime (nested guards share them), restoring the previous ones.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// The signal that asked to stop (SIGINT or SIGTERM), 0 while none has.
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }
// The exit code for a stop by that signal: 128 + signal (130 for SIGINT, 143 for SIGTERM).
int stop_exit_code();
const char* stop_signal_name();
// True when a SIGUSR1 arrived since the last call (several before one call count once).
bool take_checkpoint_request();
// Clears the stop request (tests, and a process that handles one stop and goes on).
void reset_interrupts();

// Thrown between sampler steps once a stop was requested.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace dd::ddpm
