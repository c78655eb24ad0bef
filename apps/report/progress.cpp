#include "apps/report/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace dd::report {
namespace {

constexpr double kRedrawInterval = 0.1;   // s between in-place redraws on a terminal
constexpr double kLineInterval = 10.0;    // s between full lines in a log
constexpr double kLineFraction = 0.05;    // fraction of the work between full lines in a log
constexpr int kBarWidth = 24;

}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(std::llround(s));
  char buf[48];
  if (t < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
  } else if (t < 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  }
  return buf;
}

Progress::Progress(int64_t total, std::string label, std::FILE* out, int64_t start)
    : total_(total), start_(start), label_(std::move(label)), out_(out), now_([] { return Clock::now(); }) {
  DD_CHECK(out_ != nullptr, "Progress '", label_, "': no output stream");
  DD_CHECK(total_ >= 0 && start_ >= 0 && start_ <= total_, "Progress '", label_, "': start ", start_, " and total ",
           total_, " must satisfy 0 <= start <= total");
  redraw_ = ::isatty(::fileno(out_)) == 1;
  t0_ = last_print_ = now_();
  done_ = start_;
}

Progress::~Progress() {
  // Leaving scope early (an exception) must not leave the cursor at the end of a half-drawn line,
  // or the error message would be glued onto it.
  if (line_open_) std::fputc('\n', out_);
}

void Progress::set_style(Style s) {
  redraw_ = s == Style::Auto ? ::isatty(::fileno(out_)) == 1 : s == Style::Redraw;
}

void Progress::set_clock(std::function<Clock::time_point()> now) {
  now_ = std::move(now);
  t0_ = last_print_ = now_();
}

std::string Progress::format_line(int64_t done, const std::string& extra, double elapsed_s) const {
  const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
  const int filled = static_cast<int>(std::floor(frac * kBarWidth));
  const std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '.');
  // Rate over this run only (since start), so a resumed run does not look infinitely fast.
  const int64_t run_done = done - start_;
  const double eta = done >= total_ ? 0.0 : run_done > 0 ? elapsed_s * (total_ - done) / run_done : -1.0;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(std::floor(frac * 100.0)));
  std::string line = label_ + " " + std::to_string(done) + "/" + std::to_string(total_) + " [" + bar + "] " + pct;
  if (!extra.empty()) line += "  " + extra;
  line += "  elapsed " + format_duration(elapsed_s);
  if (done < total_) line += "  eta " + format_duration(eta);
  return line;
}

void Progress::update(int64_t done, const std::string& extra) {
  DD_CHECK(!finished_, "Progress '", label_, "': update after finish");
  DD_CHECK(done >= 0 && done <= total_, "Progress '", label_, "': done ", done, " outside [0, ", total_, "]");
  done_ = done;
  extra_ = extra;
  const Clock::time_point now = now_();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  bool due;
  if (redraw_) {
    due = !printed_ || since >= kRedrawInterval;
  } else {
    // A line when the work crossed the next 5% mark since the last line, or 10 s went by.
    const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(kLineFraction * total_)));
    due = !printed_ || done / step != last_printed_done_ / step || since >= kLineInterval;
  }
  if (done == total_) due = due || done != last_printed_done_;
  if (due) emit();
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!printed_ || done_ != last_printed_done_ || redraw_) emit();
  if (line_open_) {
    std::fputc('\n', out_);
    line_open_ = false;
  }
  std::fflush(out_);
}

void Progress::emit() {
  const Clock::time_point now = now_();
  const double elapsed = std::chrono::duration<double>(now - t0_).count();
  std::string line = format_line(done_, extra_, elapsed);
  if (redraw_) {
    // Overwrite the previous line; pad with spaces when the new one is shorter.
    const size_t width = line.size();
    if (line.size() < last_width_) line.append(last_width_ - line.size(), ' ');
    last_width_ = width;
    std::fputc('\r', out_);
    std::fputs(line.c_str(), out_);
    line_open_ = true;
  } else {
    std::fputs(line.c_str(), out_);
    std::fputc('\n', out_);
  }
  std::fflush(out_);
  printed_ = true;
  last_printed_done_ = done_;
  last_print_ = now;
}

}  // namespace dd::report
