#include "kernels/op_profile.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

namespace dd::kernels::op_profile {

namespace {
std::atomic<bool> g_on{false};
std::mutex g_mu;
std::map<std::string, Entry>& table() {
  static std::map<std::string, Entry> t;
  return t;
}
}  // namespace

void enable(bool on) { g_on.store(on, std::memory_order_relaxed); }
bool enabled() { return g_on.load(std::memory_order_relaxed); }

void reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  table().clear();
}

void add(const char* op, double seconds) {
  std::lock_guard<std::mutex> lock(g_mu);
  Entry& e = table()[op];
  e.op = op;
  ++e.calls;
  e.seconds += seconds;
}

std::vector<Entry> snapshot() {
  std::vector<Entry> v;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (const auto& kv : table()) v.push_back(kv.second);
  }
  std::sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
  return v;
}

}  // namespace dd::kernels::op_profile
