#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include <catch2/catch.hpp>

#include "apps/data/cifar10.h"
#include "apps/data/idx.h"
#include "apps/data/image_folder.h"
#include "apps/data/loader.h"
#include "apps/data/open_dataset.h"
#include "apps/data/resample.h"
#include "engine/error.h"
#include "tests/support/compare.h"
#include "tests/support/data_files.h"

using namespace dd;
using namespace dd::data;
using namespace dd::test;

namespace {
std::vector<uint8_t> random_bytes(Random& rng, int64_t n) {
  std::vector<uint8_t> v(static_cast<std::size_t>(n));
  for (auto& b : v) b = static_cast<uint8_t>(rng.uniform_int(0, 255));
  return v;
}

std::shared_ptr<const Dataset> make_dataset(int64_t n, int64_t h, int64_t w, int64_t c, std::vector<uint8_t> px) {
  auto d = std::make_shared<Dataset>();
  d->name = "synthetic";
  d->count = n;
  d->height = h;
  d->width = w;
  d->channels = c;
  d->pixels = std::move(px);
  return d;
}

// Images whose first two bytes spell their index, so a batch tells which images it holds.
std::shared_ptr<const Dataset> indexed_dataset(Random& rng, int64_t n, int64_t h, int64_t w, int64_t c) {
  std::vector<uint8_t> px = random_bytes(rng, n * h * w * c);
  for (int64_t i = 0; i < n; ++i) {
    px[static_cast<std::size_t>(i * h * w * c)] = static_cast<uint8_t>(i & 255);
    px[static_cast<std::size_t>(i * h * w * c + 1)] = static_cast<uint8_t>(i >> 8);
  }
  return make_dataset(n, h, w, c, std::move(px));
}

uint8_t to_byte(float v) { return static_cast<uint8_t>(std::lround((v + 1.0f) * 127.5f)); }

// Image indices of a batch read back from indexed_dataset's first two bytes (no flips).
std::vector<int64_t> batch_indices(const Tensor& batch) {
  const int64_t b = batch.dim(0), img = batch.numel() / b;
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < b; ++i) idx.push_back(to_byte(batch.data()[i * img]) + 256 * to_byte(batch.data()[i * img + 1]));
  return idx;
}

// A 24-bit BMP whose height field is negative: rows stored top row first (a legitimate layout).
// rgb holds the image top row first; `height_field` is what the header claims.
std::vector<uint8_t> top_down_bmp(int32_t w, int32_t height_field, const std::vector<uint8_t>& rgb) {
  const int32_t h = height_field < 0 ? -height_field : height_field, row = (3 * w + 3) / 4 * 4;
  const std::size_t rows = rgb.empty() ? 0 : static_cast<std::size_t>(h);  // no rows: the header alone
  std::vector<uint8_t> f(54 + static_cast<std::size_t>(row) * rows);
  auto put = [&f](std::size_t at, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) f[at + static_cast<std::size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  };
  f[0] = 'B';
  f[1] = 'M';
  put(2, static_cast<uint32_t>(f.size()), 4);
  put(10, 54, 4);                                   // pixel data offset
  put(14, 40, 4);                                   // BITMAPINFOHEADER
  put(18, static_cast<uint32_t>(w), 4);
  put(22, static_cast<uint32_t>(height_field), 4);  // negative: top-down
  put(26, 1, 2);                                    // planes
  put(28, 24, 2);                                   // bits per pixel
  for (std::size_t p = 0; p < rgb.size() / 3; ++p) {
    const std::size_t y = p / static_cast<std::size_t>(w), x = p % static_cast<std::size_t>(w);
    for (std::size_t c = 0; c < 3; ++c) f[54 + y * static_cast<std::size_t>(row) + 3 * x + 2 - c] = rgb[3 * p + c];  // BGR
  }
  return f;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("IDX images load exactly from raw and gzip files", "[data]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp;
  // Non-square images catch a swapped rows/cols.
  const uint32_t n = 5, rows = 3, cols = 4;
  const std::vector<uint8_t> px = random_bytes(rng, n * rows * cols);
  const std::vector<uint8_t> file = idx_bytes(0x00000803, {n, rows, cols}, px);
  write_bytes(tmp.file("raw/train-images-idx3-ubyte"), file);
  write_gz(tmp.file("gz/train-images-idx3-ubyte.gz"), file);
  for (const std::string& path : {tmp.file("raw/train-images-idx3-ubyte"), tmp.file("gz/train-images-idx3-ubyte.gz")}) {
    INFO(path);
    Dataset d = load_idx_images(path);
    CHECK(d.shape() == Shape{5, 3, 4, 1});
    CHECK(d.pixels == px);
  }
  // A folder holding the training file resolves to it; sizes and channels are kept when <= 0.
  Dataset viaf = open_dataset(tmp.file("gz"), 0, 0);
  CHECK(viaf.shape() == Shape{5, 3, 4, 1});
  CHECK(viaf.pixels == px);
  CHECK(viaf.name == "gz");
  CHECK(resolve_dataset(tmp.file("raw")).kind == DatasetKind::Idx);
}

TEST_CASE("broken IDX files fail naming the file and the problem", "[data]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp;
  const std::vector<uint8_t> px = random_bytes(rng, 4 * 5 * 5);
  const std::vector<uint8_t> good = idx_bytes(0x00000803, {4, 5, 5}, px);

  const std::string missing = tmp.file("nothing-here.gz");
  REQUIRE_THROWS_WITH(load_idx_images(missing), Catch::Contains(missing) && Catch::Contains("does not exist"));
  REQUIRE_THROWS_WITH(open_dataset(missing, 28, 1), Catch::Contains(missing) && Catch::Contains("does not exist"));

  std::vector<uint8_t> short_px(good.begin(), good.end() - 7);
  for (bool gz : {false, true}) {
    const std::string p = tmp.file(gz ? "short.idx3.gz" : "short.idx3");
    gz ? write_gz(p, short_px) : write_bytes(p, short_px);
    REQUIRE_THROWS_WITH(load_idx_images(p), Catch::Contains(p) && Catch::Contains("truncated"));
  }
  const std::string short_header = tmp.file("header.idx3");
  write_bytes(short_header, std::vector<uint8_t>(good.begin(), good.begin() + 10));
  REQUIRE_THROWS_WITH(load_idx_images(short_header), Catch::Contains(short_header) && Catch::Contains("truncated header"));

  const std::string magic = tmp.file("magic.idx3");
  write_bytes(magic, idx_bytes(0x00000903, {4, 5, 5}, px));
  REQUIRE_THROWS_WITH(load_idx_images(magic), Catch::Contains(magic) && Catch::Contains("wrong magic 0x00000903"));
  const std::string labels = tmp.file("train-labels-idx1-ubyte.gz");
  write_gz(labels, idx_bytes(0x00000801, {4}, {1, 2, 3, 4}));
  REQUIRE_THROWS_WITH(open_dataset(labels, 0, 0), Catch::Contains(labels) && Catch::Contains("label file"));

  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  const std::string trailing = tmp.file("trailing.idx3");
  write_bytes(trailing, longer);
  REQUIRE_THROWS_WITH(load_idx_images(trailing), Catch::Contains(trailing) && Catch::Contains("1 bytes after"));

  const std::string zero = tmp.file("zero.idx3");
  write_bytes(zero, idx_bytes(0x00000803, {0, 5, 5}, {}));
  REQUIRE_THROWS_WITH(load_idx_images(zero), Catch::Contains(zero) && Catch::Contains("must be positive"));
}

TEST_CASE("CIFAR-10 batches load as NHWC from the planar records", "[data]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp;
  const int64_t img = 32 * 32 * 3;
  const std::vector<uint8_t> a = random_bytes(rng, 3 * img), b = random_bytes(rng, 2 * img);
  // Batches 1 and 3 only: whichever exist are used, in batch order.
  write_bytes(tmp.file("cifar/data_batch_3.bin"), cifar_bytes(b, {7, 8}));
  write_bytes(tmp.file("cifar/data_batch_1.bin"), cifar_bytes(a, {0, 1, 2}));
  write_bytes(tmp.file("cifar/test_batch.bin"), cifar_bytes(b, {7, 8}));
  CHECK(resolve_dataset(tmp.file("cifar")).kind == DatasetKind::Cifar10);
  Dataset d = open_dataset(tmp.file("cifar"), 0, 0);
  REQUIRE(d.shape() == Shape{5, 32, 32, 3});
  std::vector<uint8_t> expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  CHECK(d.pixels == expected);
  // Spot-check the plane -> interleaved mapping against the raw record, independent of cifar_bytes.
  const std::vector<uint8_t> rec = cifar_bytes(a, {0, 1, 2});
  const int64_t y = 5, x = 17, p = y * 32 + x;
  for (int64_t ch = 0; ch < 3; ++ch)
    CHECK(d.image(1)[p * 3 + ch] == rec[static_cast<std::size_t>(kCifarRecord + 1 + ch * 1024 + p)]);
  // One batch file given directly.
  CHECK(open_dataset(tmp.file("cifar/data_batch_3.bin"), 0, 0).pixels == b);
}

TEST_CASE("broken CIFAR-10 folders fail naming the file", "[data]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp;
  std::vector<uint8_t> rec = cifar_bytes(random_bytes(rng, 2 * 32 * 32 * 3), {1, 2});
  rec.pop_back();
  const std::string truncated = tmp.file("cifar/data_batch_2.bin");
  write_bytes(truncated, rec);
  REQUIRE_THROWS_WITH(open_dataset(tmp.file("cifar"), 32, 3),
                      Catch::Contains(truncated) && Catch::Contains("6145 bytes") && Catch::Contains("3073"));
  const std::string empty = tmp.file("cifar/data_batch_1.bin");
  write_bytes(empty, {});
  REQUIRE_THROWS_WITH(load_cifar10(tmp.file("cifar")), Catch::Contains(empty) && Catch::Contains("0 bytes"));
  std::filesystem::create_directories(tmp.file("none"));
  REQUIRE_THROWS_WITH(load_cifar10(tmp.file("none")),
                      Catch::Contains(tmp.file("none")) && Catch::Contains("data_batch_1.bin"));
}

TEST_CASE("resize taps: area averaging down, bilinear up, identity", "[data]") {
  // Weights are exact binary fractions or 1/3, 2/3 rounded once to float: compare within 1e-7.
  AxisTaps half = axis_taps(4, 2, 0);
  CHECK(half.first == std::vector<int64_t>{0, 2});
  CHECK(half.count == std::vector<int64_t>{2, 2});
  CHECK(half.w == std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f});
  AxisTaps third = axis_taps(3, 2, 1);  // footprints [0, 1.5] and [1.5, 3], shifted by the crop start 1
  CHECK(third.first == std::vector<int64_t>{1, 2});
  REQUIRE(third.w.size() == 4);
  CHECK(third.w[0] == Approx(2.0 / 3).margin(1e-7));
  CHECK(third.w[1] == Approx(1.0 / 3).margin(1e-7));
  CHECK(third.w[2] == Approx(1.0 / 3).margin(1e-7));
  CHECK(third.w[3] == Approx(2.0 / 3).margin(1e-7));
  AxisTaps up = axis_taps(2, 4, 0);  // centres at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
  CHECK(up.first == std::vector<int64_t>{0, 0, 0, 1});
  CHECK(up.w == std::vector<float>{1.0f, 0.0f, 0.75f, 0.25f, 0.25f, 0.75f, 1.0f});
  AxisTaps same = axis_taps(5, 5, 2);
  CHECK(same.first == std::vector<int64_t>{2, 3, 4, 5, 6});
  CHECK(same.w == std::vector<float>(5, 1.0f));
}

TEST_CASE("center crop, resize and channel conversion on known patterns", "[data]") {
  std::vector<float> scratch;
  SECTION("wide gray image: centre square, 2x2 block means") {
    // 4 x 6: columns 0 and 5 fall outside the centred 4 x 4 square.
    std::vector<uint8_t> src(24);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 6; ++x) src[y * 6 + x] = static_cast<uint8_t>(x == 0 || x == 5 ? 255 : 10 * y + 2 * x);
    std::vector<uint8_t> out(4);
    Resampler(4, 6, 2).run(src.data(), 1, 1, out.data(), scratch);
    // Block (0,0) holds rows 0-1, cols 1-2: {2,4,12,14} -> 8; (0,1): {6,8,16,18} -> 12; +20 for rows 2-3.
    CHECK(out == std::vector<uint8_t>{8, 12, 28, 32});
  }
  SECTION("tall image with an odd excess drops the bottom row") {
    std::vector<uint8_t> tall = {1, 2, 3, 4, 5, 6, 99, 99};  // 4 x 2: rows 1-2 kept
    std::vector<uint8_t> out(4);
    Resampler(4, 2, 2).run(tall.data(), 1, 1, out.data(), scratch);
    CHECK(out == std::vector<uint8_t>{3, 4, 5, 6});
    std::vector<uint8_t> odd = {1, 2, 3, 4, 250, 250};  // 3 x 2: (3 - 2) / 2 = 0, the last row goes
    std::vector<uint8_t> out2(4);
    Resampler(3, 2, 2).run(odd.data(), 1, 1, out2.data(), scratch);
    CHECK(out2 == std::vector<uint8_t>{1, 2, 3, 4});
  }
  SECTION("bilinear enlargement") {
    std::vector<uint8_t> src = {0, 100, 40, 200};  // 2 x 2
    std::vector<uint8_t> out(16);
    Resampler(2, 2, 4).run(src.data(), 1, 1, out.data(), scratch);
    // Row 0 of the output is source row 0 interpolated: 0, 25, 75, 100; row 3 is source row 1: 40, 80, 160, 200;
    // row 1 = 0.75 row0 + 0.25 row1: 10, 38.75 -> 39, 96.25 -> 96, 125.
    CHECK(std::vector<uint8_t>(out.begin(), out.begin() + 4) == std::vector<uint8_t>{0, 25, 75, 100});
    CHECK(std::vector<uint8_t>(out.begin() + 4, out.begin() + 8) == std::vector<uint8_t>{10, 39, 96, 125});
    CHECK(std::vector<uint8_t>(out.begin() + 12, out.end()) == std::vector<uint8_t>{40, 80, 160, 200});
  }
  SECTION("RGB -> luminance, gray -> RGB, alpha ignored") {
    // 0.299 R + 0.587 G + 0.114 B by hand: 76.245, 149.685, 29.07, 18.15 (from 10, 20, 30).
    std::vector<uint8_t> rgba = {255, 0, 0, 9, 0, 255, 0, 9, 0, 0, 255, 9, 10, 20, 30, 9};  // 1 x 4
    std::vector<uint8_t> gray(4);
    Resampler(1, 4, 0).run(rgba.data(), 4, 1, gray.data(), scratch);
    CHECK(gray == std::vector<uint8_t>{76, 150, 29, 18});
    std::vector<uint8_t> rgb(12);
    Resampler(1, 4, 0).run(rgba.data(), 4, 3, rgb.data(), scratch);
    CHECK(rgb == std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30});
    std::vector<uint8_t> ga = {7, 1, 200, 1};  // gray + alpha
    std::vector<uint8_t> rep(6);
    Resampler(1, 2, 0).run(ga.data(), 2, 3, rep.data(), scratch);
    CHECK(rep == std::vector<uint8_t>{7, 7, 7, 200, 200, 200});
  }
}

TEST_CASE("open_dataset resizes and converts an IDX set", "[data]") {
  TempDir tmp;
  // Two 4 x 4 images of 2 x 2 constant blocks: halving gives the block values exactly.
  std::vector<uint8_t> px(32);
  const uint8_t blocks[2][4] = {{0, 50, 100, 255}, {9, 8, 7, 6}};
  for (int i = 0; i < 2; ++i)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) px[i * 16 + y * 4 + x] = blocks[i][(y / 2) * 2 + x / 2];
  write_gz(tmp.file("set/train-images-idx3-ubyte.gz"), idx_bytes(0x00000803, {2, 4, 4}, px));
  Dataset d = open_dataset(tmp.file("set"), 2, 3);
  REQUIRE(d.shape() == Shape{2, 2, 2, 3});
  for (int i = 0; i < 2; ++i)
    for (int p = 0; p < 4; ++p)
      for (int c = 0; c < 3; ++c) CHECK(d.image(i)[p * 3 + c] == blocks[i][p]);
  CHECK_THAT(d.description, Catch::Contains("2x2") && Catch::Contains("1 -> 3 channels"));
  // Same size and channels: untouched.
  CHECK(open_dataset(tmp.file("set"), 4, 1).pixels == px);
  REQUIRE_THROWS_WITH(open_dataset(tmp.file("set"), 4, 2), Catch::Contains("2 channels"));
}

TEST_CASE("image folders: sorted recursive walk, crop/resize, channels", "[data]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp;
  // b.png: 2 x 4 RGB whose centre 2 x 2 is known; a/z.png: 2 x 2 gray; c.png: RGBA 4 x 4 of constant blocks.
  std::vector<uint8_t> b = random_bytes(rng, 2 * 4 * 3);
  const uint8_t centre[4][3] = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}, {100, 110, 120}};
  for (int y = 0; y < 2; ++y)
    for (int x = 1; x < 3; ++x)
      for (int c = 0; c < 3; ++c) b[(y * 4 + x) * 3 + c] = centre[y * 2 + (x - 1)][c];
  write_png(tmp.file("imgs/b.png"), 2, 4, 3, b);
  write_png(tmp.file("imgs/a/z.png"), 2, 2, 1, {1, 2, 3, 4});
  std::vector<uint8_t> c(4 * 4 * 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      const uint8_t v = static_cast<uint8_t>(60 * ((y / 2) * 2 + x / 2) + 20);
      uint8_t* p = &c[(y * 4 + x) * 4];
      p[0] = v, p[1] = static_cast<uint8_t>(v + 1), p[2] = static_cast<uint8_t>(v + 2), p[3] = 128;
    }
  write_png(tmp.file("imgs/c.png"), 4, 4, 4, c);
  write_bytes(tmp.file("imgs/.DS_Store"), {1, 2, 3});  // hidden: skipped
  write_bytes(tmp.file("imgs/.cache/x.txt"), {1});

  CHECK(image_folder_files(tmp.file("imgs")) == std::vector<std::string>{"a/z.png", "b.png", "c.png"});
  CHECK(resolve_dataset(tmp.file("imgs")).kind == DatasetKind::ImageFolder);
  Dataset rgb = open_dataset(tmp.file("imgs"), 2, 0);  // colour present -> 3 channels
  REQUIRE(rgb.shape() == Shape{3, 2, 2, 3});
  CHECK(std::vector<uint8_t>(rgb.image(0), rgb.image(1)) == std::vector<uint8_t>{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4});
  for (int p = 0; p < 4; ++p)
    for (int ch = 0; ch < 3; ++ch) CHECK(rgb.image(1)[p * 3 + ch] == centre[p][ch]);
  for (int p = 0; p < 4; ++p)
    for (int ch = 0; ch < 3; ++ch) CHECK(rgb.image(2)[p * 3 + ch] == 60 * p + 20 + ch);

  Dataset gray = open_dataset(tmp.file("imgs"), 1, 1);  // everything averaged to one luminance pixel
  REQUIRE(gray.shape() == Shape{3, 1, 1, 1});
  // 2.5 -> 3 (rounded half up); centre mean RGB (55, 65, 75) -> 63.15 -> 63; blocks mean (110, 111, 112) -> 110.82 -> 111.
  CHECK(gray.pixels == std::vector<uint8_t>{3, 63, 111});

  std::filesystem::remove(tmp.file("imgs/b.png"));
  std::filesystem::remove(tmp.file("imgs/c.png"));
  Dataset only_gray = open_dataset(tmp.file("imgs"), 2, 0);  // no colour left -> 1 channel
  CHECK(only_gray.shape() == Shape{1, 2, 2, 1});
  CHECK(only_gray.pixels == std::vector<uint8_t>{1, 2, 3, 4});
}

TEST_CASE("broken image folders fail naming the folder or file", "[data]") {
  TempDir tmp;
  std::filesystem::create_directories(tmp.file("empty/sub"));
  write_bytes(tmp.file("empty/.hidden"), {1});
  REQUIRE_THROWS_WITH(open_dataset(tmp.file("empty"), 8, 3), Catch::Contains(tmp.file("empty")) && Catch::Contains("empty"));

  write_png(tmp.file("mixed/a.png"), 2, 2, 1, {1, 2, 3, 4});
  write_bytes(tmp.file("mixed/notes.txt"), {'h', 'i', '\n'});
  for (int channels : {0, 3})
    REQUIRE_THROWS_WITH(open_dataset(tmp.file("mixed"), 8, channels),
                        Catch::Contains("notes.txt") && Catch::Contains("cannot decode"));

  write_png(tmp.file("cut/a.png"), 16, 16, 3, std::vector<uint8_t>(16 * 16 * 3, 77));
  std::vector<uint8_t> head(40);
  {
    std::ifstream in(tmp.file("cut/a.png"), std::ios::binary);
    in.read(reinterpret_cast<char*>(head.data()), 40);
  }
  write_bytes(tmp.file("cut/b.png"), head);  // a PNG signature and header, then nothing
  REQUIRE_THROWS_WITH(open_dataset(tmp.file("cut"), 8, 3), Catch::Contains("b.png"));
  REQUIRE_THROWS_WITH(open_dataset(tmp.file("cut"), 0, 3), Catch::Contains("image size"));
}

TEST_CASE("loader: each epoch a fresh permutation, drop-last, scaling to [-1, 1]", "[data][loader]") {
  DD_TEST_RANDOM(rng);
  const int64_t n = 50, bs = 8;  // 6 batches per epoch, 2 images left over
  auto data = indexed_dataset(rng, n, 2, 3, 1);
  Loader loader(data, {bs, 1234, false});
  CHECK(loader.batches_per_epoch() == 6);
  std::vector<std::vector<int64_t>> epochs;
  for (uint64_t e = 0; e < 3; ++e) {
    std::vector<int64_t> seen;
    for (int64_t b = 0; b < 6; ++b) {
      CHECK(loader.state().epoch == e);
      CHECK(loader.state().position == static_cast<uint64_t>(b * bs));
      Tensor batch = loader.next_batch();
      REQUIRE(batch.shape() == Shape{bs, 2, 3, 1});
      for (int64_t i : batch_indices(batch)) seen.push_back(i);
      if (e == 0 && b == 0) {
        // Every value is exactly x / 127.5 - 1 of its source byte (one float division and subtraction).
        const std::vector<int64_t> idx = batch_indices(batch);
        for (int64_t i = 0; i < bs; ++i)
          for (int64_t j = 0; j < 6; ++j) {
            const double x = data->image(idx[static_cast<std::size_t>(i)])[j];
            CHECK(batch.data()[i * 6 + j] == Approx(x / 127.5 - 1.0).margin(1e-7));  // float rounding only
          }
      }
    }
    // The epoch's 48 images are distinct and are the first 48 of the epoch's permutation.
    std::vector<int64_t> order = loader.epoch_order(e);
    CHECK(seen == std::vector<int64_t>(order.begin(), order.begin() + 48));
    std::sort(order.begin(), order.end());
    std::vector<int64_t> iota(static_cast<std::size_t>(n));
    std::iota(iota.begin(), iota.end(), 0);
    CHECK(order == iota);
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 48);
    epochs.push_back(seen);
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);

  // Exact end points of the scaling.
  auto ends = make_dataset(2, 1, 1, 1, {0, 255});
  Loader le(ends, {2, 0, false});
  std::vector<float> v = le.next_batch().to_vector();
  std::sort(v.begin(), v.end());
  CHECK(v == std::vector<float>{-1.0f, 1.0f});
}

TEST_CASE("loader: same seed same batches, set_state resumes bitwise", "[data][loader]") {
  DD_TEST_RANDOM(rng);
  const uint64_t seed = rng.engine()();
  auto data = indexed_dataset(rng, 37, 4, 5, 3);
  const LoaderOptions opt{5, seed, true};  // 7 batches per epoch
  Loader a(data, opt), b(data, opt), other(data, {5, seed + 1, true});
  std::vector<Tensor> run;
  bool differs = false;
  for (int i = 0; i < 20; ++i) {
    run.push_back(a.next_batch());
    CHECK(bitwise_equal(run.back(), b.next_batch()));
    differs |= !bitwise_equal(run.back(), other.next_batch());
  }
  CHECK(differs);

  // Interrupted mid-epoch 1 (after 9 batches), restored into a fresh loader.
  Loader first(data, opt);
  for (int i = 0; i < 9; ++i) first.next_batch();
  const LoaderState saved = first.state();
  CHECK(saved.epoch == 1);
  CHECK(saved.position == 10);
  Loader resumed(data, opt);
  resumed.set_state(saved);
  Tensor into = Tensor::empty(resumed.batch_shape());
  for (int i = 9; i < 20; ++i) {
    resumed.next_batch_into(into);
    CHECK(bitwise_equal(run[static_cast<std::size_t>(i)], into));
  }

  REQUIRE_THROWS_WITH(resumed.set_state({0, 3}), Catch::Contains("position 3") && Catch::Contains("batch size"));
  REQUIRE_THROWS_WITH(resumed.set_state({0, 35}), Catch::Contains("position 35"));
  REQUIRE_THROWS_WITH(resumed.set_state({uint64_t{1} << 40, 0}), Catch::Contains("epoch"));
  REQUIRE_THROWS_WITH(Loader(data, {38, 0, true}), Catch::Contains("batch size 38") && Catch::Contains("37"));
  REQUIRE_THROWS_WITH(Loader(data, {0, 0, true}), Catch::Contains("batch size 0"));
  Tensor wrong = Tensor::empty({5, 5, 4, 3});
  REQUIRE_THROWS_WITH(resumed.next_batch_into(wrong), Catch::Contains("[5,5,4,3]") && Catch::Contains("[5,4,5,3]"));
}

TEST_CASE("loader: horizontal flips are exact mirrors about half the time", "[data][loader]") {
  DD_TEST_RANDOM(rng);
  const int64_t n = 64, h = 3, w = 5, c = 3, bs = 16;
  std::vector<uint8_t> px = random_bytes(rng, n * h * w * c);
  // Column 0 dark and column 4 bright in channel 0: no image equals its mirror.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y) {
      px[static_cast<std::size_t>(((i * h + y) * w + 0) * c)] = 0;
      px[static_cast<std::size_t>(((i * h + y) * w + 4) * c)] = 255;
    }
  auto data = make_dataset(n, h, w, c, px);
  const uint64_t seed = rng.engine()();
  for (bool flip_on : {true, false}) {
    Loader loader(data, {bs, seed, flip_on});
    int64_t flips = 0, total = 0;
    for (int step = 0; step < 40; ++step) {
      const LoaderState st = loader.state();
      const std::vector<int64_t> order = loader.epoch_order(st.epoch);
      Tensor batch = loader.next_batch();
      for (int64_t b = 0; b < bs; ++b) {
        const bool f = loader.flipped(st.epoch, st.position + b);
        const uint8_t* src = data->image(order[static_cast<std::size_t>(st.position + b)]);
        const float* got = batch.data() + b * h * w * c;
        bool exact = true;
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x)
            for (int64_t k = 0; k < c; ++k) {
              const int64_t sx = f ? w - 1 - x : x;
              const float want = static_cast<float>(src[(y * w + sx) * c + k]) / 127.5f - 1.0f;
              exact &= got[(y * w + x) * c + k] == want;
            }
        CHECK(exact);
        flips += f;
        ++total;
      }
    }
    INFO("flipped " << flips << " of " << total);
    if (flip_on) {
      // 640 fair coin tosses: sd 12.6 around 320; [256, 384] is 5 sd either side.
      CHECK(flips >= 256);
      CHECK(flips <= 384);
    } else {
      CHECK(flips == 0);
    }
  }
}

TEST_CASE("the real Fashion-MNIST training images", "[data][fashion]") {
  if (!std::filesystem::exists(kDefaultDatasetDir)) {
    WARN("skipped: " << kDefaultDatasetDir << " is absent");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  Dataset d = open_dataset("", 28, 1);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("loaded " << summary(d) << " in " << secs << " s, mean " << pixel_mean(d));
  CHECK(d.name == "fashion-mnist");
  CHECK(d.shape() == Shape{60000, 28, 28, 1});
  // Fashion-MNIST's training mean is 0.2860 * 255 = 72.94; a misread header or byte
  // order lands far outside this +-0.5 band.
  const double mean = pixel_mean(d);
  CHECK(mean > 72.4);
  CHECK(mean < 73.5);
  // The first training image (an ankle boot): a black top row, and pixel (3, 16) = 73 as
  // Python's gzip + numpy read it, which pins the header length and the row-major order.
  CHECK(std::all_of(d.image(0), d.image(0) + 28, [](uint8_t v) { return v == 0; }));
  CHECK(d.image(0)[3 * 28 + 16] == 73);
  CHECK(d.image(0)[3 * 28 + 15] == 13);
}

TEST_CASE("image folders as they are (FID's reader): own size, RGB, one size for all, the pixel limit", "[data]") {
  TempDir tmp;
  // 3 x 2 (w x h) gray and RGBA images: gray is replicated, alpha dropped, nothing cropped or resized.
  write_png(tmp.file("ok/a.png"), 2, 3, 1, {1, 2, 3, 4, 5, 6});
  std::vector<uint8_t> rgba(3 * 2 * 4);
  for (std::size_t i = 0; i < rgba.size(); ++i) rgba[i] = static_cast<uint8_t>(i);
  write_png(tmp.file("ok/b.png"), 2, 3, 4, rgba);
  Dataset d = load_image_folder_as_is(tmp.file("ok"), 3);
  REQUIRE(d.shape() == Shape{2, 2, 3, 3});
  CHECK(std::vector<uint8_t>(d.image(0), d.image(0) + 6) == std::vector<uint8_t>{1, 1, 1, 2, 2, 2});
  for (int p = 0; p < 6; ++p)
    for (int c = 0; c < 3; ++c) CHECK(d.image(1)[p * 3 + c] == rgba[static_cast<std::size_t>(p * 4 + c)]);

  write_png(tmp.file("ok/c.png"), 3, 2, 1, {1, 2, 3, 4, 5, 6});  // 2 wide, 3 tall: another size
  REQUIRE_THROWS_WITH(load_image_folder_as_is(tmp.file("ok"), 3),
                      Catch::Contains("c.png") && Catch::Contains("2x3") && Catch::Contains("same size"));

  // A header claiming 9000 x 9000 pixels is refused before anything is decoded.
  write_png(tmp.file("big/a.png"), 1, 1, 1, {7});
  std::vector<uint8_t> png;
  {
    std::ifstream in(tmp.file("big/a.png"), std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const uint8_t size9000[8] = {0, 0, 0x23, 0x28, 0, 0, 0x23, 0x28};  // IHDR width, height (big-endian)
  std::copy(size9000, size9000 + 8, png.begin() + 16);
  write_bytes(tmp.file("big/a.png"), png);
  REQUIRE_THROWS_WITH(load_image_folder_as_is(tmp.file("big"), 3), Catch::Contains("9000x9000"));
  REQUIRE_THROWS_WITH(open_dataset(tmp.file("big"), 8, 3), Catch::Contains("9000x9000") && Catch::Contains("pixels"));
}

TEST_CASE("image folders: a top-down BMP (negative height) loads upright and its size limit holds", "[data]") {
  TempDir tmp;
  // 2 wide, 3 tall, top row first.
  const std::vector<uint8_t> rgb = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180};
  write_bytes(tmp.file("ok/a.bmp"), top_down_bmp(2, -3, rgb));
  ImageHeader header;
  REQUIRE(read_image_header(tmp.file("ok/a.bmp"), header));
  CHECK(header.width == 2);
  CHECK(header.height == 3);
  const Dataset d = load_image_folder_as_is(tmp.file("ok"), 3);
  REQUIRE(d.shape() == Shape{1, 3, 2, 3});
  CHECK(std::vector<uint8_t>(d.image(0), d.image(0) + 18) == rgb);

  // The header alone claims 1287 x 458746 pixels (stb reports the height as -458746): refused before
  // anything is decoded, in both readers (the fuzzer's 1.7 GB decode). The pixel data is absent, so
  // a decode would fail with another message.
  write_bytes(tmp.file("big/a.bmp"), top_down_bmp(1287, -458746, {}));
  REQUIRE(read_image_header(tmp.file("big/a.bmp"), header));
  CHECK(header.pixels() == int64_t{1287} * 458746);
  REQUIRE_THROWS_WITH(load_image_folder_as_is(tmp.file("big"), 3), Catch::Contains("1287x458746"));
  REQUIRE_THROWS_WITH(load_image_folder(tmp.file("big"), 8, 3), Catch::Contains("1287x458746") &&
                                                                    Catch::Contains("pixels an image may have"));
}
