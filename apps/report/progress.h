#pragma once
// A progress line for long loops (training steps, sampling timesteps):
//   train  1200/5000 [#####...............]  24%  loss 0.0312  412 img/s  elapsed 1:02  eta 3:16
// On a terminal it redraws one line in place at most ~10 times a second. Anywhere else (CI logs,
// files) it prints a complete line only every 5% of the work or every 10 s, so logs stay short.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace dd::report {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Style { Auto, Redraw, Lines };  // Auto: Redraw on a TTY, Lines otherwise

  // start: work already done before this run (a resumed training run), so the rate and the ETA
  // measure only this run's speed.
  Progress(int64_t total, std::string label, std::FILE* out = stderr, int64_t start = 0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // done must stay within [0, total]; extra is shown after the percentage (e.g. "loss 0.0312  412 img/s").
  void update(int64_t done, const std::string& extra = "");
  // Prints the final state (whatever throttling held back) and ends the line. Idempotent.
  void finish();

  // For tests and unusual outputs: force a style, or read time from another clock.
  void set_style(Style s);
  void set_clock(std::function<Clock::time_point()> now);

  // The text of one progress line for the given state (no '\r' or newline).
  std::string format_line(int64_t done, const std::string& extra, double elapsed_s) const;

 private:
  void emit();

  int64_t total_, start_;
  std::string label_;
  std::FILE* out_;
  bool redraw_;
  std::function<Clock::time_point()> now_;
  Clock::time_point t0_, last_print_;
  int64_t done_ = 0, last_printed_done_ = -1;
  std::string extra_;
  size_t last_width_ = 0;
  bool printed_ = false, line_open_ = false, finished_ = false;
};

// "59s" / "3:07" / "1:02:03"; "?" for an unknown (infinite or negative) duration.
std::string format_duration(double seconds);

}  // namespace dd::report
