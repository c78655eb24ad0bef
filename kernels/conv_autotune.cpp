#include "kernels/conv_autotune.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <sstream>

#include "engine/context.h"
#include "engine/error.h"

namespace dd::kernels {

namespace {

struct State {
  std::mutex mu;
  std::map<std::string, ConvAutotuneEntry> table;  // by key
  ConvAutotuneStats stats;
};

State& state() {
  static State s;
  return s;
}

std::atomic<bool> g_on{false};

double time_once(Device dev, const std::function<void()>& f) {
  if (dev == Device::CPU) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  return cuda_mem::time_ms(f);
}

}  // namespace

void set_conv_autotune(bool on) { g_on = on; }
bool conv_autotune() { return g_on; }

std::string conv_autotune_choice(const std::string& key, const std::vector<std::string>& labels,
                                 const std::function<void(int)>& run, Device dev) {
  if (!g_on) return "";
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.table.find(key);
    if (it != s.table.end() && std::find(labels.begin(), labels.end(), it->second.option) != labels.end()) {
      ++s.stats.hits;
      return it->second.option;
    }
  }
  if (current_context().capturing()) return "";
  const auto t0 = std::chrono::steady_clock::now();
  // The best of three timed runs after a warm-up (the first run pays for lazily made state).
  constexpr int kTimed = 3;
  int best = -1;
  double best_ms = INFINITY;
  int64_t runs = 0;
  for (int i = 0; i < static_cast<int>(labels.size()); ++i) {
    double ms = INFINITY;
    try {
      run(i);
      ++runs;
      for (int r = 0; r < kTimed; ++r, ++runs) ms = std::min(ms, time_once(dev, [&] { run(i); }));
    } catch (const Error&) {
      continue;  // an option this shape cannot take (shared memory, grid limits)
    }
    if (ms < best_ms) best_ms = ms, best = i;
  }
  DD_CHECK(best >= 0, "conv autotune: every option failed for ", key);
  std::lock_guard<std::mutex> lock(s.mu);
  s.table[key] = {key, labels[best], best_ms};
  ++s.stats.tuned;
  s.stats.timed_runs += runs;
  s.stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return labels[best];
}

std::vector<ConvAutotuneEntry> conv_autotune_entries() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<ConvAutotuneEntry> out;
  for (const auto& kv : s.table) out.push_back(kv.second);
  return out;
}

std::optional<ConvAutotuneEntry> conv_autotune_entry(const std::string& prefix) {
  for (ConvAutotuneEntry& e : conv_autotune_entries())
    if (e.key.rfind(prefix + " ", 0) == 0) return e;
  return std::nullopt;
}

std::string conv_autotune_table() {
  std::ostringstream out;
  for (const ConvAutotuneEntry& e : conv_autotune_entries()) out << e.key << '\t' << e.option << '\t' << e.ms << '\n';
  return out.str();
}

void load_conv_autotune_table(const std::string& text, const std::string& what) {
  std::map<std::string, ConvAutotuneEntry> loaded;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const size_t a = line.find('\t'), b = a == std::string::npos ? a : line.find('\t', a + 1);
    DD_CHECK(a != std::string::npos && b != std::string::npos && a > 0 && b > a + 1 &&
                 line.find('\t', b + 1) == std::string::npos,
             what, ":", n, ": expected \"key<TAB>option<TAB>ms\", got \"", line, "\"");
    const std::string key = line.substr(0, a);
    loaded[key] = {key, line.substr(a + 1, b - a - 1), -1};
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& [key, c] : loaded) s.table[key] = std::move(c);
}

void clear_conv_autotune() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.table.clear();
  s.stats = {};
}

ConvAutotuneStats conv_autotune_stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.stats;
}

}  // namespace dd::kernels
