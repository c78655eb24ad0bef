#include "apps/report/loss_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "apps/report/canvas.h"
#include "apps/report/image_grid.h"
#include "engine/error.h"

namespace dd::report {
namespace {

constexpr Rgb kBackground{255, 255, 255};
constexpr Rgb kGridMajor{226, 226, 226};
constexpr Rgb kGridMinor{242, 242, 242};
constexpr Rgb kAxis{110, 110, 110};
constexpr Rgb kLabel{70, 70, 70};
constexpr Rgb kTitle{25, 25, 25};
constexpr Rgb kCurve{31, 119, 180};
constexpr float kRawOpacity = 0.30f;
constexpr float kTickScale = 1.5f;
constexpr float kTitleScale = 2.0f;

struct Tick {
  double v;           // position in plotted units (log10 of the loss on a log axis)
  std::string label;  // empty: grid line only
  bool major;
};

// 1, 2 or 5 times a power of ten, about range / target.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * mag;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// 12000 -> "12k", 2500000 -> "2.5M": step counts stay short under the x axis.
std::string step_label(double v, double largest) {
  if (v == 0.0) return "0";
  if (largest >= 1e6) return fmt("%gM", v / 1e6);
  if (largest >= 1e4) return fmt("%gk", v / 1e3);
  return fmt("%.0f", v);
}

// "1e-05" -> "1e-5": exponents without the padding zero read better on a chart.
std::string compact_g(double v) {
  std::string s = fmt("%.3g", v);
  const size_t e = s.find("e");
  if (e != std::string::npos) {
    std::string mant = s.substr(0, e), ex = s.substr(e + 1);
    const bool neg = !ex.empty() && ex[0] == '-';
    if (!ex.empty() && (ex[0] == '-' || ex[0] == '+')) ex = ex.substr(1);
    while (ex.size() > 1 && ex[0] == '0') ex = ex.substr(1);
    s = mant + "e" + (neg ? "-" : "") + ex;
  }
  return s;
}

std::vector<Tick> linear_ticks(double lo, double hi, int target, bool is_step, double largest) {
  double step = nice_step(hi - lo, target);
  if (is_step) step = std::max(step, 1.0);
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  std::vector<Tick> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1.0) {
    const double v = k * step + 0.0;  // + 0.0 turns -0 into 0, which would print as "-0"
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < 1e-12 * step ? 0.0 : v);
    ticks.push_back({v, is_step ? step_label(v, largest) : std::string(buf), true});
  }
  return ticks;
}

// Decades carry labels; 2..9 times a decade get light grid lines, and when fewer than three decades
// are labelled 2x and 5x are labelled too, so the reader always has several values to read against.
std::vector<Tick> log_ticks(double lo, double hi) {
  std::vector<Tick> ticks;
  const bool label_between = std::floor(hi) - std::ceil(lo) + 1 < 3;
  // Over many decades, all eight minor lines per decade would blur into a texture: keep 2x and 5x.
  const bool sparse_minor = hi - lo > 4.0;
  for (double d = std::floor(lo); d <= std::ceil(hi); d += 1.0) {
    for (int m = 1; m <= 9; ++m) {
      if (sparse_minor && m != 1 && m != 2 && m != 5) continue;
      const double v = d + std::log10(static_cast<double>(m));
      if (v < lo || v > hi) continue;
      const bool labelled = m == 1 || (label_between && (m == 2 || m == 5));
      ticks.push_back({v, labelled ? compact_g(std::pow(10.0, v)) : std::string(), m == 1});
    }
  }
  return ticks;
}

}  // namespace

double auto_smoothing(size_t n) {
  const double window = std::clamp(static_cast<double>(n) / 40.0, 1.0, 1000.0);
  return 1.0 - 1.0 / window;
}

std::vector<double> ema_smooth(const std::vector<double>& values, double beta) {
  DD_CHECK(beta >= 0.0 && beta < 1.0, "ema_smooth: beta must be in [0, 1), got ", beta);
  std::vector<double> out(values.size());
  // Dividing by the accumulated weight removes the start-up bias towards 0 (as TensorBoard does) and
  // stays correct when non-finite values are skipped.
  double s = 0.0, w = 0.0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) {
      s = beta * s + (1.0 - beta) * values[i];
      w = beta * w + (1.0 - beta);
    }
    out[i] = w > 0.0 ? s / w : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

void write_loss_curve(const std::string& path, const std::vector<std::pair<int64_t, double>>& points_in,
                      const LossCurveOptions& opt) {
  const std::string who = "write_loss_curve '" + path + "'";
  DD_CHECK(opt.width >= 240 && opt.height >= 160 && opt.width <= 8192 && opt.height <= 8192, who, ": size ",
           opt.width, "x", opt.height, " is outside 240x160 .. 8192x8192");
  DD_CHECK(opt.smoothing < 1.0, who, ": smoothing must be below 1 (negative for automatic), got ", opt.smoothing);

  std::vector<std::pair<int64_t, double>> points = points_in;
  std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t finite = 0;
  bool all_positive = true;
  double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
  for (const auto& [step, loss] : points) {
    if (!std::isfinite(loss)) continue;
    ++finite;
    all_positive = all_positive && loss > 0.0;
    vmin = std::min(vmin, loss);
    vmax = std::max(vmax, loss);
  }
  DD_CHECK(finite > 0, who, ": no finite loss among ", points.size(), " points");
  const size_t skipped = points.size() - finite;
  const bool log_y = all_positive && vmax / vmin > 10.0;

  // Everything below works in plotted units: log10(loss) on a log axis, so the EMA is a geometric
  // mean there, which follows multiplicative loss noise better.
  std::vector<double> ys(points.size());
  for (size_t i = 0; i < points.size(); ++i) ys[i] = log_y ? std::log10(points[i].second) : points[i].second;
  const double beta = opt.smoothing >= 0.0 ? opt.smoothing : auto_smoothing(finite);
  const std::vector<double> smooth = ema_smooth(ys, beta);

  double ylo = log_y ? std::log10(vmin) : vmin, yhi = log_y ? std::log10(vmax) : vmax;
  if (yhi - ylo < 1e-12 * std::max(1.0, std::abs(yhi))) {  // a flat loss still gets a visible band
    const double pad = log_y ? 0.1 : std::max(std::abs(yhi) * 0.1, 1e-3);
    ylo -= pad;
    yhi += pad;
  }
  const double ypad = 0.05 * (yhi - ylo);
  ylo -= ypad;
  yhi += ypad;
  double xlo = static_cast<double>(points.front().first), xhi = static_cast<double>(points.back().first);
  if (xhi <= xlo) {
    xlo -= 1.0;
    xhi += 1.0;
  }

  const std::vector<Tick> yt = log_y ? log_ticks(ylo, yhi) : linear_ticks(ylo, yhi, 6, false, 0.0);
  const double xlargest = std::max(std::abs(xlo), std::abs(xhi));
  std::vector<Tick> xt = linear_ticks(xlo, xhi, std::max(3, opt.width / 130), true, xlargest);

  // Layout: margins sized to the labels they hold.
  float ylabel_w = 0.0f;
  for (const Tick& t : yt) ylabel_w = std::max(ylabel_w, text_width(t.label, kTickScale));
  const float tick_h = text_cap_height(kTickScale), title_h = text_cap_height(kTitleScale);
  const int left = static_cast<int>(std::ceil(ylabel_w)) + 22;
  const int right = 28;
  // What the smoothed curve ends at (the number one usually wants from this chart), right of the
  // title when it fits there, else on its own line below it.
  size_t last = smooth.size();
  while (last > 0 && !std::isfinite(smooth[last - 1])) --last;
  std::string sub = "EMA " + compact_g(log_y ? std::pow(10.0, smooth[last - 1]) : smooth[last - 1]) + " at step " +
                    std::to_string(points[last - 1].first) + (log_y ? "   log scale" : "");
  if (skipped > 0) sub += "   " + std::to_string(skipped) + " non-finite skipped";
  const float title_w = text_width(opt.title, kTitleScale), sub_w = text_width(sub, kTickScale);
  const bool sub_below = left + title_w + 24 + sub_w > opt.width - 28;
  const int top = static_cast<int>(title_h) + 30 + (sub_below ? static_cast<int>(tick_h) + 10 : 0);
  const int bottom = static_cast<int>(2 * tick_h) + 34;
  const int px0 = left, px1 = opt.width - right, py0 = top, py1 = opt.height - bottom;
  auto sx = [&](double x) { return static_cast<float>(px0 + (x - xlo) / (xhi - xlo) * (px1 - px0)); };
  auto sy = [&](double y) { return static_cast<float>(py1 - (y - ylo) / (yhi - ylo) * (py1 - py0)); };

  Canvas canvas(opt.width, opt.height, kBackground);

  // Grid: one-pixel lines snapped to whole pixels so they stay crisp.
  Mask major = canvas.mask(), minor = canvas.mask();
  for (const Tick& t : yt) {
    const float y = std::floor(sy(t.v));
    (t.major ? major : minor).add_rect(px0, y, px1, y + 1);
  }
  for (const Tick& t : xt) {
    const float x = std::floor(sx(t.v));
    major.add_rect(x, py0, x + 1, py1);
  }
  canvas.paint(minor, kGridMinor);
  canvas.paint(major, kGridMajor);

  // Curves, clipped to the plot area and broken where a loss was not finite.
  auto polyline = [&](const std::vector<double>& v, float width) {
    Mask m = canvas.mask();
    m.set_clip(px0, py0, px1, py1 + 1);
    bool have_prev = false;
    float lx = 0, ly = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!std::isfinite(v[i]) || !std::isfinite(ys[i])) {
        have_prev = false;
        continue;
      }
      const float x = sx(static_cast<double>(points[i].first)), y = sy(v[i]);
      const bool next_ok = i + 1 < v.size() && std::isfinite(v[i + 1]) && std::isfinite(ys[i + 1]);
      if (!have_prev && !next_ok) {
        m.add_segment(x, y, x, y, std::max(2.5f * width, 5.0f));  // an isolated point: a visible dot
      } else {
        m.add_segment(have_prev ? lx : x, have_prev ? ly : y, x, y, width);
      }
      lx = x;
      ly = y;
      have_prev = true;
    }
    return m;
  };
  canvas.paint(polyline(ys, 1.0f), kCurve, kRawOpacity);
  canvas.paint(polyline(smooth, 2.2f), kCurve, 1.0f);

  // Axes, ticks and their labels.
  Mask axes = canvas.mask(), labels = canvas.mask();
  axes.add_rect(px0 - 1, py0, px0, py1 + 1);
  axes.add_rect(px0 - 1, py1, px1, py1 + 1);
  for (const Tick& t : yt) {
    if (t.label.empty()) continue;
    const float y = std::floor(sy(t.v));
    axes.add_rect(px0 - 6, y, px0 - 1, y + 1);
    labels.add_text(px0 - 10 - text_width(t.label, kTickScale), std::round(y + 0.5f - tick_h / 2), t.label,
                    kTickScale);
  }
  for (const Tick& t : xt) {
    const float x = std::floor(sx(t.v));
    axes.add_rect(x, py1 + 1, x + 1, py1 + 6);
    labels.add_text(std::round(x + 0.5f - text_width(t.label, kTickScale) / 2), py1 + 11, t.label, kTickScale);
  }
  const std::string xname = "step";
  labels.add_text(std::round((px0 + px1) / 2.0f - text_width(xname, kTickScale) / 2),
                  py1 + 11 + tick_h + 10, xname, kTickScale);
  canvas.paint(axes, kAxis);
  canvas.paint(labels, kLabel);

  Mask title = canvas.mask(), subtitle = canvas.mask();
  title.add_text(px0, 14, opt.title, kTitleScale);
  if (sub_below) {
    subtitle.add_text(px0, 14 + title_h + 10, sub, kTickScale);
  } else {
    subtitle.add_text(px1 - sub_w, 14 + title_h - tick_h, sub, kTickScale);
  }
  canvas.paint(title, kTitle);
  canvas.paint(subtitle, kLabel);

  // Legend in the top-right corner of the plot.
  const float lw = 26.0f, gap = 8.0f, row = tick_h + 9.0f;
  const std::string raw_name = "loss", ema_name = "EMA";
  const float box_w = lw + gap + std::max(text_width(raw_name, kTickScale), text_width(ema_name, kTickScale)) + 20;
  const float bx1 = px1 - 10.0f, bx0 = bx1 - box_w, by0 = py0 + 10.0f, by1 = by0 + 2 * row + 10;
  canvas.fill_rect(bx0, by0, bx1, by1, kBackground, 0.92f);
  Mask frame = canvas.mask();
  frame.add_rect(bx0, by0, bx1, by0 + 1);
  frame.add_rect(bx0, by1 - 1, bx1, by1);
  frame.add_rect(bx0, by0, bx0 + 1, by1);
  frame.add_rect(bx1 - 1, by0, bx1, by1);
  canvas.paint(frame, kGridMajor);
  Mask raw_key = canvas.mask(), ema_key = canvas.mask(), keys = canvas.mask();
  const float r0 = by0 + 5 + row / 2, r1 = r0 + row;
  raw_key.add_segment(bx0 + 10, r0, bx0 + 10 + lw, r0, 1.5f);
  ema_key.add_segment(bx0 + 10, r1, bx0 + 10 + lw, r1, 2.2f);
  keys.add_text(bx0 + 10 + lw + gap, std::round(r0 - tick_h / 2), raw_name, kTickScale);
  keys.add_text(bx0 + 10 + lw + gap, std::round(r1 - tick_h / 2), ema_name, kTickScale);
  canvas.paint(raw_key, kCurve, 0.45f);
  canvas.paint(ema_key, kCurve, 1.0f);
  canvas.paint(keys, kLabel);

  write_png(path, canvas.rgb(), opt.width, opt.height, 3);
}

}  // namespace dd::report
