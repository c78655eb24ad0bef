#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"
#include <stb_image.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "apps/report/report.h"
#include "engine/error.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::report;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {


struct Png {
  int w = 0, h = 0, c = 0;
  std::vector<uint8_t> px;
};

Png read_png(const std::string& path) {
  Png p;
  unsigned char* data = stbi_load(path.c_str(), &p.w, &p.h, &p.c, 0);
  INFO(path);
  REQUIRE(data != nullptr);
  p.px.assign(data, data + static_cast<size_t>(p.w) * p.h * p.c);
  stbi_image_free(data);
  return p;
}

std::string read_text(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::stringstream ss(s);
  std::string line;
  while (std::getline(ss, line)) lines.push_back(line);
  return lines;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A clock the test moves by hand, so throttling is checked without sleeping.
struct FakeClock {
  double t = 0.0;
  std::function<Progress::Clock::time_point()> fn() {
    return [this] {
      return Progress::Clock::time_point(
          std::chrono::duration_cast<Progress::Clock::duration>(std::chrono::duration<double>(t)));
    };
  }
};

}  // namespace

TEST_CASE("image grid layout, padding and [-1,1] mapping are pixel-exact", "[report]") {
  dd::test::TempDir tmp("dd_test_report");
  // Values and the bytes they must become: round(clamp((x+1)/2, 0, 1) * 255), out-of-range clamped.
  const std::vector<std::pair<float, int>> table = {
      {-1.0f, 0}, {1.0f, 255}, {0.0f, 128}, {0.5f, 191}, {-0.5f, 64}, {1.5f, 255}, {-3.0f, 0},
      {std::numeric_limits<float>::infinity(), 255}, {0.00393f, 128}, {-0.996f, 1}};

  SECTION("gray, 5 images, 2 per row, padding 1") {
    const int n = 5, h = 2, w = 3, pad = 1, nrow = 2;
    // Pixel (k, y, x) gets table entry (k + 2y + x) so every image is different.
    std::vector<float> v;
    for (int k = 0; k < n; ++k)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) v.push_back(table[(k + 2 * y + x) % table.size()].first);
    const std::string path = tmp.file("grid.png");
    write_image_grid(path, Tensor::from_vector({n, h, w, 1}, v), nrow, pad);
    const Png p = read_png(path);
    // 2 columns x 3 rows of 3x2 images with 1-pixel padding around and between them.
    REQUIRE(p.w == 2 * (w + pad) + pad);
    REQUIRE(p.h == 3 * (h + pad) + pad);
    REQUIRE(p.c == 1);
    std::vector<int> expected(static_cast<size_t>(p.w * p.h), 0);  // padding value 0
    for (int k = 0; k < n; ++k) {
      const int top = pad + (k / nrow) * (h + pad), left = pad + (k % nrow) * (w + pad);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) expected[(top + y) * p.w + left + x] = table[(k + 2 * y + x) % table.size()].second;
    }
    for (int i = 0; i < p.w * p.h; ++i) {
      INFO("pixel (" << i % p.w << "," << i / p.w << ")");
      REQUIRE(static_cast<int>(p.px[i]) == expected[i]);
    }
    // Spot checks written out by hand: image 3 sits in row 1, column 1, its top-left pixel at (5, 4)
    // holds table[3] = 0.5 -> 191; the empty sixth cell (row 2, column 1) is all padding.
    CHECK(int(p.px[4 * p.w + 5]) == 191);
    CHECK(int(p.px[7 * p.w + 5]) == 0);
    CHECK(int(p.px[7 * p.w + 1]) == table[4].second);  // image 4 at (1, 7)
    CHECK(tmp.entries() == 1);  // no temporary file left behind
  }

  SECTION("RGB, gray padding, one row") {
    const int n = 3, h = 2, w = 2, c = 3, pad = 2;
    std::vector<float> v;
    for (int k = 0; k < n; ++k)
      for (int i = 0; i < h * w * c; ++i) v.push_back(table[(k * 5 + i) % table.size()].first);
    const std::string path = tmp.file("rgb.png");
    write_image_grid(path, Tensor::from_vector({n, h, w, c}, v), 8, pad, 100);
    const Png p = read_png(path);
    REQUIRE(p.w == n * (w + pad) + pad);  // nrow 8 > N: one row of N images
    REQUIRE(p.h == h + 2 * pad);
    REQUIRE(p.c == 3);
    for (int gy = 0; gy < p.h; ++gy) {
      for (int gx = 0; gx < p.w; ++gx) {
        const int cell = (gx - pad) / (w + pad), x = (gx - pad) % (w + pad), y = gy - pad;
        const bool inside = gx >= pad && x < w && y >= 0 && y < h;
        for (int ch = 0; ch < c; ++ch) {
          const int want = inside ? table[(cell * 5 + (y * w + x) * c + ch) % table.size()].second : 100;
          INFO("pixel (" << gx << "," << gy << ") channel " << ch);
          REQUIRE(int(p.px[(gy * p.w + gx) * c + ch]) == want);
        }
      }
    }
    CHECK(tmp.entries() == 1);
  }
}

TEST_CASE("image grid and png errors name the path", "[report]") {
  dd::test::TempDir tmp("dd_test_report");
  const std::string path = tmp.file("bad.png");
  REQUIRE_THROWS_WITH(write_image_grid(path, Tensor::zeros({2, 4, 4, 2}), 2),
                      Contains(path) && Contains("1 or 3 channels"));
  REQUIRE_THROWS_WITH(write_image_grid(path, Tensor::zeros({4, 4, 3}), 2), Contains(path) && Contains("[N,H,W,C]"));
  REQUIRE_THROWS_WITH(write_image_grid(path, Tensor::zeros({1, 2, 2, 1}), 0), Contains(path) && Contains("nrow"));
  REQUIRE_THROWS_WITH(write_image_grid(path, Tensor::full({1, 2, 2, 1}, std::nanf("")), 1),
                      Contains(path) && Contains("4 NaN"));
  REQUIRE_THROWS_WITH(write_png(path, std::vector<uint8_t>(11), 2, 2, 3), Contains(path) && Contains("needs 12 bytes"));
  const std::string nowhere = tmp.path() + "/missing_dir/x.png";
  REQUIRE_THROWS_WITH(write_png(nowhere, std::vector<uint8_t>(4), 2, 2, 1), Contains(nowhere));
  CHECK(tmp.entries() == 0);
}

TEST_CASE("loss curve is a PNG of the requested size with a visible curve", "[report]") {
  DD_TEST_RANDOM(rng);
  dd::test::TempDir tmp("dd_test_report");
  std::normal_distribution<double> noise(0.0, 0.25);
  std::vector<std::pair<int64_t, double>> pts;
  SECTION("spanning decades (log axis)") {
    for (int64_t s = 0; s < 1500; ++s) pts.push_back({s, (0.8 * std::exp(-s / 150.0) + 0.02) * std::exp(noise(rng.engine()))});
  }
  SECTION("narrow range (linear axis), with a NaN") {
    for (int64_t s = 0; s < 300; s += 3) pts.push_back({s, 0.05 + 0.01 * std::exp(-s / 100.0) + 0.002 * noise(rng.engine())});
    pts[40].second = std::nan("");
  }
  SECTION("a single point") { pts.push_back({7, 0.3}); }
  const std::string path = tmp.file("loss.png");
  LossCurveOptions opt;
  opt.width = 640;
  opt.height = 360;
  write_loss_curve(path, pts, opt);
  const Png p = read_png(path);
  REQUIRE(p.w == 640);
  REQUIRE(p.h == 360);
  REQUIRE(p.c == 3);
  // The solid EMA curve is drawn in (31,119,180): it must appear, and the image must not be one colour.
  // The legend's key (top right) is drawn in that colour too, so only pixels outside it count.
  int curve = 0, non_white = 0;
  for (int y = 0; y < p.h; ++y) {
    for (int x = 0; x < p.w; ++x) {
      const uint8_t* q = &p.px[(static_cast<size_t>(y) * p.w + x) * 3];
      const bool outside_legend = x < p.w / 2 || y > 110;
      curve += outside_legend && q[0] == 31 && q[1] == 119 && q[2] == 180;
      non_white += q[0] != 255 || q[1] != 255 || q[2] != 255;
    }
  }
  CHECK(curve >= (pts.size() == 1 ? 1 : 200));
  CHECK(non_white > 2000);  // axes, grid, labels
  CHECK(tmp.entries() == 1);
}

TEST_CASE("loss curve smoothing and errors", "[report]") {
  // Bias-corrected EMA, beta 0.5: [1, 3] -> 1, (0.25 + 1.5) / 0.75; a NaN keeps the average so far.
  const std::vector<double> s = ema_smooth({std::nan(""), 1.0, 3.0, std::nan("")}, 0.5);
  CHECK(std::isnan(s[0]));
  CHECK(s[1] == 1.0);
  CHECK(s[2] == Approx(1.75 / 0.75).epsilon(1e-12));  // a few ulp of double arithmetic
  CHECK(s[3] == s[2]);
  CHECK(auto_smoothing(40000) == Approx(0.999).epsilon(1e-12));
  CHECK(auto_smoothing(10) == 0.0);

  dd::test::TempDir tmp("dd_test_report");
  const std::string path = tmp.file("l.png");
  REQUIRE_THROWS_WITH(write_loss_curve(path, {}), Contains(path) && Contains("no finite loss"));
  REQUIRE_THROWS_WITH(write_loss_curve(path, {{0, std::nan("")}}), Contains(path) && Contains("no finite loss"));
  LossCurveOptions tiny;
  tiny.width = 100;
  REQUIRE_THROWS_WITH(write_loss_curve(path, {{0, 1.0}}, tiny), Contains(path) && Contains("100x540"));
  CHECK(tmp.entries() == 0);
}

TEST_CASE("progress in a log prints throttled full lines", "[report]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  FakeClock clock;
  {
    Progress p(1000, "train", f);  // a tmpfile is not a terminal: full lines
    p.set_clock(clock.fn());
    for (int64_t d = 1; d <= 1000; ++d) {
      clock.t += 0.001;
      p.update(d, "loss 0.0312  412 img/s");
    }
    p.finish();
  }
  const std::string out = read_text(f);
  std::fclose(f);
  INFO(out);
  CHECK(out.find('\r') == std::string::npos);
  const std::vector<std::string> lines = split_lines(out);
  // The first update, then one line per 5% (50 steps): 21 lines, not 1000.
  REQUIRE(lines.size() == 21);
  for (const std::string& l : lines) {
    CHECK_THAT(l, Contains("train ") && Contains("/1000 [") && Contains("loss 0.0312  412 img/s") && Contains("elapsed"));
  }
  CHECK_THAT(lines[0], Contains("1/1000") && Contains("  0%") && Contains("eta 1s"));
  CHECK_THAT(lines[10], Contains("500/1000 [############............]  50%"));
  CHECK_THAT(lines[20], Contains("1000/1000 [########################] 100%") && !Contains("eta"));
}

TEST_CASE("progress in a log also prints every 10 s, and measures a resumed run's rate", "[report]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  FakeClock clock;
  Progress p(10000, "sample", f, 500);
  p.set_clock(clock.fn());
  p.update(501);     // t = 0: first line
  clock.t = 5.0;
  p.update(502);     // held back: under 5% and under 10 s
  clock.t = 10.5;
  p.update(600);     // 10 s passed
  clock.t = 11.0;
  p.update(601);
  const std::vector<std::string> lines = split_lines(read_text(f));
  REQUIRE(lines.size() == 2);
  // 100 steps of this run in 10.5 s; 9400 to go -> 987 s.
  CHECK_THAT(lines[1], Contains("600/10000") && Contains("elapsed 11s") && Contains("eta 16:27"));
  REQUIRE_THROWS_WITH(p.update(10001), Contains("sample") && Contains("10001"));
  p.finish();
  std::fclose(f);
  CHECK(format_duration(59.4) == "59s");
  CHECK(format_duration(187) == "3:07");
  CHECK(format_duration(3723) == "1:02:03");
  CHECK(format_duration(std::numeric_limits<double>::infinity()) == "?");
}

TEST_CASE("progress on a terminal redraws one line at most ~10 times a second", "[report]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  FakeClock clock;
  {
    Progress p(100, "train", f);
    p.set_style(Progress::Style::Redraw);
    p.set_clock(clock.fn());
    for (int d = 1; d <= 100; ++d) {
      clock.t += 0.01;  // 100 updates over 1 s
      p.update(d, d < 50 ? "a much longer extra text" : "short");
    }
    p.finish();
  }
  const std::string out = read_text(f);
  std::fclose(f);
  INFO(out);
  const auto redraws = std::count(out.begin(), out.end(), '\r');
  CHECK(redraws >= 9);
  CHECK(redraws <= 12);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  CHECK(out.back() == '\n');
  // The final state is drawn, and each redraw is at least as long as the text it overwrites (spaces
  // cover what remains of a longer earlier line).
  std::vector<std::string> draws;
  for (size_t at = out.find('\r'); at != std::string::npos;) {
    const size_t next = out.find('\r', at + 1);
    draws.push_back(out.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1));
    at = next;
  }
  CHECK_THAT(draws.back(), Contains("100/100") && Contains("short") && !Contains("longer"));
  for (size_t i = 1; i < draws.size(); ++i) {
    const std::string prev = draws[i - 1].substr(0, draws[i - 1].find_last_not_of(" \n") + 1);
    INFO("redraw " << i);
    CHECK(draws[i].find_last_not_of('\n') + 1 >= prev.size());
  }
}

TEST_CASE("metrics log appends, reads back and truncates on resume", "[report]") {
  dd::test::TempDir tmp("dd_test_report");
  const std::string path = tmp.file("metrics.csv");
  auto loss_at = [](int64_t s) { return static_cast<double>(static_cast<float>(1.0 / (s + 1.0))); };
  {
    MetricsLog log(path);
    for (int64_t s = 0; s < 100; s += 10) log.append(s, loss_at(s), 1e-4 * s, 412.25, 0.5 * s);
    // Flushed per line: readable while the log is still open.
    const std::vector<MetricsRow> rows = read_metrics(path);
    REQUIRE(rows.size() == 10);
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t s = static_cast<int64_t>(i) * 10;
      CHECK(rows[i].step == s);
      // %.9g identifies a float32 exactly: the value read back rounds to the same float.
      CHECK(static_cast<float>(rows[i].loss) == static_cast<float>(loss_at(s)));
      CHECK(rows[i].lr == Approx(1e-4 * s).epsilon(1e-8));     // %.9g: 9 significant digits
      CHECK(rows[i].img_per_s == Approx(412.25).margin(0.005));  // written with 2 decimals
      CHECK(rows[i].elapsed_s == Approx(0.5 * s).margin(5e-4));  // written with 3 decimals
    }
    REQUIRE_THROWS_WITH(log.append(90, 1.0, 0.0, 0.0, 0.0), Contains(path) && Contains("step 90"));
  }
  {
    // Resuming from the checkpoint at step 45: steps 50..90 are dropped and logged again.
    MetricsLog log = MetricsLog::open_for_resume(path, 45);
    CHECK(log.last_step() == 40);
    for (int64_t s = 50; s < 70; s += 10) log.append(s, 0.25, 0.0, 1.0, 1.0);
  }
  std::vector<MetricsRow> rows = read_metrics(path);
  REQUIRE(rows.size() == 7);
  for (size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].step == static_cast<int64_t>(i) * 10);
  CHECK(static_cast<float>(rows[4].loss) == static_cast<float>(loss_at(40)));
  CHECK(rows[5].loss == 0.25);

  // A killed run can leave half a line: it is dropped, also when resuming.
  write_text(path, std::string(kMetricsHeader) + "\n1,0.5,0.001,10.00,1.000\n2,0.4,0.00");
  REQUIRE(read_metrics(path).size() == 1);
  {
    MetricsLog log = MetricsLog::open_for_resume(path, 100);
    log.append(2, 0.4, 0.001, 10.0, 2.0);
  }
  rows = read_metrics(path);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].elapsed_s == 2.0);

  // A missing log on resume starts a new one.
  const std::string fresh = tmp.file("fresh.csv");
  { MetricsLog log = MetricsLog::open_for_resume(fresh, 10); }
  CHECK(read_metrics(fresh).empty());

  write_text(path, "step,loss\n1,2\n");
  REQUIRE_THROWS_WITH(read_metrics(path), Contains(path) && Contains("line 1"));
  write_text(path, std::string(kMetricsHeader) + "\n1,0.5,0,1,1\n2,oops,0,1,1\n3,0.5,0,1,1\n");
  REQUIRE_THROWS_WITH(read_metrics(path), Contains(path) && Contains("line 3") && Contains("oops"));
  write_text(path, std::string(kMetricsHeader) + "\n5,0.5,0,1,1\n5,0.5,0,1,1\n");
  REQUIRE_THROWS_WITH(read_metrics(path), Contains(path) && Contains("does not follow"));
  REQUIRE_THROWS_WITH(read_metrics(tmp.file("none.csv")), Contains("none.csv"));
  CHECK(tmp.entries() == 2);  // metrics.csv and fresh.csv, no temporaries
}
