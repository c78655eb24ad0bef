#pragma once
// Part of tests/support/cuda_emulation.h (include that one): what a kernel's
// launch must satisfy beyond its shape (__launch_bounds__), and the thread
// order the scheduler uses (see the top of cuda_emulation.h).

namespace dd_emu {

// __launch_bounds__(max_threads, min_blocks) of the running kernel (tests/emu/rewrite.cmake moves
// it into the kernel's body): the device refuses a launch whose block has more threads.
inline void check_launch_bounds(long long max_threads, long long min_blocks = 0) {
  detail::Scheduler& s = detail::sched();
  if (!s.current || s.current->index != 0) return;
  s.bounds_declared = true;
  if (max_threads < 1 || min_blocks < 0)
    throw std::runtime_error("cuda_emulation: " + detail::launch_str() + ": __launch_bounds__(" +
                             std::to_string(max_threads) + ", " + std::to_string(min_blocks) + ") is invalid");
  if (s.block.count() > max_threads)
    throw std::runtime_error("cuda_emulation: " + detail::launch_str() + " launches " +
                             std::to_string(s.block.count()) + " threads a block, more than its __launch_bounds__(" +
                             std::to_string(max_threads) + "): the device refuses it (too many resources requested)");
}

// The thread order of the launches that follow (the default comes from DD_EMU_SCHEDULE).
inline Schedule schedule() { return detail::schedule(); }
inline void set_schedule(Schedule s) { detail::schedule() = s; }

}  // namespace dd_emu
