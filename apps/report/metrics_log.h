#pragma once
// The training metrics log: a CSV with one line per logged step,
//   step,loss,lr,img_per_s,elapsed_s
// flushed line by line so it can be followed (tail -f) and survives a crash. A resumed run first
// drops the lines after its checkpoint's step, so the log never holds a step twice.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dd::report {

struct MetricsRow {
  int64_t step = 0;
  double loss = 0.0;
  double lr = 0.0;
  double img_per_s = 0.0;
  double elapsed_s = 0.0;
};

class MetricsLog {
 public:
  // Starts a new log at path (replacing any file there) holding only the header.
  explicit MetricsLog(const std::string& path);
  // Continues the log at path after resuming from a checkpoint at `step`: keeps the rows with
  // step <= step (the file is rewritten atomically), drops the rest. A missing file starts a new log.
  static MetricsLog open_for_resume(const std::string& path, int64_t step);
  ~MetricsLog();
  MetricsLog(MetricsLog&& o) noexcept;
  MetricsLog& operator=(MetricsLog&&) = delete;
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Steps must increase; each line is flushed before append returns.
  void append(const MetricsRow& row);
  void append(int64_t step, double loss, double lr, double img_per_s, double elapsed_s) {
    append(MetricsRow{step, loss, lr, img_per_s, elapsed_s});
  }
  const std::string& path() const { return path_; }
  // The last step written (or kept on resume); -1 when there is none yet.
  int64_t last_step() const { return last_step_; }

 private:
  MetricsLog(const std::string& path, const std::vector<MetricsRow>& keep);
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t last_step_ = -1;
};

extern const char* const kMetricsHeader;  // "step,loss,lr,img_per_s,elapsed_s"

// Parses a log written by MetricsLog. Throws naming the path and line for a wrong header, a
// malformed line or steps out of order. An incomplete last line (no newline: the run was killed
// mid-write) is dropped.
std::vector<MetricsRow> read_metrics(const std::string& path);

}  // namespace dd::report
