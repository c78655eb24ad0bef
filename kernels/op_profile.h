#pragma once
// Wall time per kernel entry point on the CPU backend: where a CPU step's time goes, op by op.
// DD_DISPATCH times each CPU call while profiling is on (off by default: then one relaxed load of
// a flag per call). CPU kernels run synchronously, so the wall time of the call is the op's time;
// CUDA launches are asynchronous and are not timed here (use the bench's per-kernel tables or ncu).
// Nested entry points (an op whose CPU kernel calls another dispatched op) count in both.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dd::kernels::op_profile {

void enable(bool on);
bool enabled();
void reset();

struct Entry {
  std::string op;
  int64_t calls = 0;
  double seconds = 0;
};
// Sorted by total time, largest first.
std::vector<Entry> snapshot();

void add(const char* op, double seconds);

// Times its scope into `op` when profiling is on.
class Scope {
 public:
  explicit Scope(const char* op) : op_(enabled() ? op : nullptr) {
    if (op_) t0_ = std::chrono::steady_clock::now();
  }
  ~Scope() {
    if (op_) add(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* op_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace dd::kernels::op_profile
