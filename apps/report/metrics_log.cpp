#include "apps/report/metrics_log.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/report/atomic_file.h"
#include "engine/error.h"

namespace dd::report {

const char* const kMetricsHeader = "step,loss,lr,img_per_s,elapsed_s";

namespace {

std::string format_row(const MetricsRow& r) {
  // %.9g identifies every float32 loss exactly (the loss is computed in float); rate and time need less.
  char buf[192];
  std::snprintf(buf, sizeof buf, "%lld,%.9g,%.9g,%.2f,%.3f\n", static_cast<long long>(r.step), r.loss, r.lr,
                r.img_per_s, r.elapsed_s);
  return buf;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno != ERANGE;
}

bool parse_row(const std::string& line, MetricsRow& r) {
  std::vector<std::string> f;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) f.push_back(cell);
  if (!line.empty() && line.back() == ',') f.push_back("");
  if (f.size() != 5 || f[0].empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long step = std::strtoll(f[0].c_str(), &end, 10);
  if (end != f[0].c_str() + f[0].size() || errno == ERANGE) return false;
  r.step = step;
  return parse_double(f[1], r.loss) && parse_double(f[2], r.lr) && parse_double(f[3], r.img_per_s) &&
         parse_double(f[4], r.elapsed_s);
}

}  // namespace

std::vector<MetricsRow> read_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DD_CHECK(in.good(), "read_metrics '", path, "': cannot open: ", std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<MetricsRow> rows;
  size_t pos = 0;
  int line_no = 0;
  int64_t prev = -1;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
    pos = complete ? nl + 1 : text.size();
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1) {
      DD_CHECK(line == kMetricsHeader, "read_metrics '", path, "': line 1 is '", line, "', expected the header '",
               kMetricsHeader, "'");
      continue;
    }
    // Every row MetricsLog writes ends in a newline: a last line without one is the torn final write
    // of a killed run, possibly cut inside a number, so it is dropped even when it parses.
    if (!complete) break;
    MetricsRow r;
    if (!parse_row(line, r)) {
      DD_FAIL("read_metrics '", path, "': line ", line_no, " '", line, "' is not 5 numbers (", kMetricsHeader, ")");
    }
    DD_CHECK(r.step > prev, "read_metrics '", path, "': line ", line_no, ": step ", r.step,
             " does not follow step ", prev);
    prev = r.step;
    rows.push_back(r);
  }
  DD_CHECK(line_no >= 1, "read_metrics '", path, "': empty file, expected the header '", kMetricsHeader, "'");
  return rows;
}

MetricsLog::MetricsLog(const std::string& path) : MetricsLog(path, {}) {}

MetricsLog::MetricsLog(const std::string& path, const std::vector<MetricsRow>& keep) : path_(path) {
  // The kept lines and the header are written atomically before appending starts, so a crash here
  // leaves either the old log or the new one.
  std::string text = std::string(kMetricsHeader) + "\n";
  for (const MetricsRow& r : keep) text += format_row(r);
  write_file_atomically(path_, text.data(), text.size(), "MetricsLog");
  f_ = std::fopen(path_.c_str(), "ab");
  DD_CHECK(f_, "MetricsLog '", path_, "': cannot open for appending: ", std::strerror(errno));
  if (!keep.empty()) last_step_ = keep.back().step;
}

MetricsLog MetricsLog::open_for_resume(const std::string& path, int64_t step) {
  std::vector<MetricsRow> keep;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    for (const MetricsRow& r : read_metrics(path))
      if (r.step <= step) keep.push_back(r);
  }
  return MetricsLog(path, keep);
}

MetricsLog::MetricsLog(MetricsLog&& o) noexcept : path_(std::move(o.path_)), f_(o.f_), last_step_(o.last_step_) {
  o.f_ = nullptr;
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::append(const MetricsRow& row) {
  DD_CHECK(f_, "MetricsLog '", path_, "': append to a closed log");
  DD_CHECK(row.step > last_step_, "MetricsLog '", path_, "': step ", row.step, " does not follow the last step ",
           last_step_);
  const std::string line = format_row(row);
  const bool ok = std::fputs(line.c_str(), f_) >= 0 && std::fflush(f_) == 0;
  DD_CHECK(ok, "MetricsLog '", path_, "': write failed: ", std::strerror(errno));
  last_step_ = row.step;
}

}  // namespace dd::report
