#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {


void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file with the given header text and data buffer, laid out by hand so broken files can be made.
std::string raw_file(const std::string& header, const std::string& buffer) {
  return u64_le(header.size()) + header + buffer;
}

template <typename T>
SafeTensor make_tensor(const std::string& dtype, const std::vector<int64_t>& shape, const std::vector<T>& values) {
  SafeTensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

std::vector<float> random_floats(Random& rng, int64_t n) {
  std::vector<float> v;
  for (double x : rng.normal_f32(n)) v.push_back(static_cast<float>(x));
  return v;
}

// Runs a python script with /usr/bin/python3 (the interpreter with numpy; see the common brief).
// Returns its combined output; fails the test with that output when the script fails.
std::string run_python(const TempDir& tmp, const std::string& script) {
  const std::string probe = "/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1";
  if (std::system(probe.c_str()) != 0)
    FAIL("/usr/bin/python3 cannot import numpy: install python3-numpy (apt-get install python3-numpy)");
  const std::string py = tmp.file("check.py");
  const std::string log = tmp.file("check.log");
  write_bytes(py, script);
  const int rc = std::system(("/usr/bin/python3 '" + py + "' > '" + log + "' 2>&1").c_str());
  const std::string out = read_bytes(log);
  INFO("python output:\n" << out);
  REQUIRE(rc == 0);
  return out;
}

std::string py_list(const std::vector<float>& v) {
  std::string s = "[";
  char buf[32];
  for (float x : v) {
    // 9 significant digits identify a float32 exactly.
    std::snprintf(buf, sizeof buf, "%.9g,", static_cast<double>(x));
    s += buf;
  }
  return s + "]";
}

}  // namespace

TEST_CASE("safetensors round trip: F32, I64, scalar, zero-size, metadata", "[safetensors]") {
  DD_TEST_RANDOM(rng);
  dd::test::TempDir tmp("dd_test_safetensors");
  const std::string path = tmp.file("round.safetensors");

  const std::vector<float> w = random_floats(rng, 3 * 5 * 2);
  const std::vector<float> odd = random_floats(rng, 3);  // 12 bytes: the next tensor would be misaligned after it
  const std::vector<int64_t> steps = {0, -7, int64_t(1) << 40, std::numeric_limits<int64_t>::min()};
  SafeTensorsFile f;
  f.put_f32("b.weight", Tensor::from_vector({3, 5, 2}, w));
  f.put_f32("a.odd", Tensor::from_vector({3}, odd));
  f.put_i64("z.steps", steps, {2, 2});
  f.put_f32("scalar", Tensor::scalar(-0.25f));
  f.put_f32("empty", Tensor::zeros({0, 3}));

  SECTION("empty metadata") {}
  SECTION("with metadata") { f.metadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo, \"quoted\""}}; }
  save_safetensors(path, f);
  SafeTensorsFile g = load_safetensors(path);

  CHECK(g.metadata == f.metadata);
  CHECK(g.source == path);
  REQUIRE(g.tensors.size() == 5);
  for (const auto& [name, t] : f.tensors) {
    INFO(name);
    const SafeTensor& u = g.at(name);
    CHECK(u.dtype == t.dtype);
    CHECK(u.shape == t.shape);
    CHECK(u.bytes == t.bytes);  // bitwise: the file is a byte copy
  }
  // to_f32 reproduces the tensor exactly, shape included ([] is a scalar, [0,3] has no elements).
  Tensor wt = g.at("b.weight").to_f32();
  CHECK(wt.shape() == Shape{3, 5, 2});
  CHECK(wt.to_vector() == w);
  CHECK(g.at("scalar").to_f32().shape() == Shape{});
  CHECK(g.at("scalar").to_f32().item() == -0.25f);
  CHECK(g.at("empty").to_f32().shape() == Shape{0, 3});
  CHECK(g.at("z.steps").to_i64() == steps);

  // Layout: header padded with spaces to a multiple of 8, tensors tiling the buffer with each one
  // aligned to its element size (I64 first, then F32 by name).
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  CHECK(n % 8 == 0);
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(h["z.steps"]["data_offsets"][0] == 0);
  CHECK(h["a.odd"]["data_offsets"][0] == 32);
  CHECK(h["b.weight"]["data_offsets"][0] == 44);
  // The metadata always holds the data's checksum (engine/safetensors.h), beside the caller's keys.
  CHECK(h["__metadata__"].size() == f.metadata.size() + 1);
  CHECK(h["__metadata__"].contains("dd_data_crc32c"));
  // No temporary file is left beside the output.
  CHECK(tmp.entries() == 1);
}

TEST_CASE("safetensors dtype conversions", "[safetensors]") {
  // F16 bit patterns: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, +inf.
  SafeTensor h = make_tensor<uint16_t>("F16", {6}, {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00});
  const std::vector<float> hv = h.to_f32().to_vector();
  CHECK(hv[0] == 1.0f);
  CHECK(hv[1] == -2.0f);
  CHECK(hv[2] == 65504.0f);
  CHECK(hv[3] == std::ldexp(1.0f, -24));
  CHECK((hv[4] == 0.0f && std::signbit(hv[4])));
  CHECK(std::isinf(hv[5]));
  CHECK(std::isnan(make_tensor<uint16_t>("F16", {1}, {0x7E00}).to_f32().item()));
  // F16 normal with mantissa bits: 0x3555 = 0.333251953125 exactly.
  CHECK(make_tensor<uint16_t>("F16", {1}, {0x3555}).to_f32().item() == 0.333251953125f);

  // BF16 is the top half of a float32: 1, -2.5, 3.140625.
  SafeTensor b = make_tensor<uint16_t>("BF16", {3}, {0x3F80, 0xC020, 0x4049});
  CHECK(b.to_f32().to_vector() == std::vector<float>{1.0f, -2.5f, 3.140625f});

  // F64 rounds to the nearest float.
  CHECK(make_tensor<double>("F64", {2}, {0.1, -1e300}).to_f32().to_vector() ==
        std::vector<float>{0.1f, -std::numeric_limits<float>::infinity()});
  CHECK(make_tensor<int32_t>("I32", {2}, {-3, 7}).to_f32().to_vector() == std::vector<float>{-3.0f, 7.0f});
  CHECK(make_tensor<int64_t>("I64", {1, 2}, {int64_t(1) << 30, -5}).to_f32().to_vector() ==
        std::vector<float>{1073741824.0f, -5.0f});
  CHECK(make_tensor<int32_t>("I32", {2}, {-3, 7}).to_i64() == std::vector<int64_t>{-3, 7});
  CHECK(make_tensor<uint8_t>("BOOL", {3}, {0, 1, 2}).to_i64() == std::vector<int64_t>{0, 1, 1});

  // Floats holding integers convert to int64; anything else is refused, naming the dtype and value.
  CHECK(make_tensor<float>("F32", {2}, {3.0f, -1000.0f}).to_i64() == std::vector<int64_t>{3, -1000});
  REQUIRE_THROWS_WITH(make_tensor<float>("F32", {2}, {3.0f, 2.5f}).to_i64(),
                      Contains("F32") && Contains("element 1") && Contains("2.5"));
  REQUIRE_THROWS_WITH(make_tensor<double>("F64", {1}, {1e19}).to_i64(), Contains("int64"));
  REQUIRE_THROWS_WITH(make_tensor<uint64_t>("U64", {1}, {~uint64_t(0)}).to_i64(), Contains("U64"));
  REQUIRE_THROWS_WITH(make_tensor<uint8_t>("F8_E4M3", {2}, {0, 0}).to_f32(), Contains("F8_E4M3"));
  REQUIRE_THROWS_WITH(make_tensor<uint8_t>("F8_E5M2", {2}, {0, 0}).to_i64(), Contains("F8_E5M2"));
  REQUIRE_THROWS_WITH(make_tensor<uint8_t>("Q4", {2}, {0, 0}).to_f32(), Contains("unknown dtype 'Q4'"));
  // A hand-built tensor whose bytes disagree with its shape is refused, not read past its end.
  REQUIRE_THROWS_WITH(make_tensor<float>("F32", {3}, {1.0f, 2.0f}).to_f32(), Contains("needs 12 bytes"));
}

TEST_CASE("safetensors F64: put_f64 stores float64 bit for bit, to_f64 reads every numeric dtype exactly", "[safetensors]") {
  dd::test::TempDir tmp("dd_test_safetensors");
  SafeTensorsFile f;
  const std::vector<double> v = {0.1, -1e300, std::ldexp(1.0, -1074), 1.0 / 3.0, -0.0, 12345.678};
  f.put_f64("x", v, {2, 3});
  f.put_f64("empty", {}, {0, 4});
  REQUIRE_THROWS_WITH(f.put_f64("y", v, {4}), Contains("holds 4 values but 6 were given"));
  REQUIRE_THROWS_WITH(f.put_f64("", v, {6}), Contains("invalid tensor name"));
  save_safetensors(tmp.file("f64.safetensors"), f);
  const SafeTensorsFile g = load_safetensors(tmp.file("f64.safetensors"));
  CHECK(g.at("x").dtype == "F64");
  CHECK(g.at("x").shape == std::vector<int64_t>{2, 3});
  const std::vector<double> back = g.at("x").to_f64();
  REQUIRE(back.size() == v.size());
  CHECK(std::memcmp(back.data(), v.data(), v.size() * sizeof(double)) == 0);  // -0.0 and the subnormal included
  CHECK(g.at("empty").to_f64().empty());
  // Narrower dtypes widen exactly.
  CHECK(make_tensor<float>("F32", {2}, {0.1f, -3.5f}).to_f64() == std::vector<double>{double(0.1f), -3.5});
  CHECK(make_tensor<uint16_t>("F16", {2}, {0x3555, 0xC000}).to_f64() == std::vector<double>{0.333251953125, -2.0});
  CHECK(make_tensor<uint16_t>("BF16", {1}, {0x4049}).to_f64() == std::vector<double>{3.140625});
  CHECK(make_tensor<int64_t>("I64", {2}, {-(int64_t(1) << 52), 7}).to_f64() ==
        std::vector<double>{-std::ldexp(1.0, 52), 7.0});
  CHECK(make_tensor<uint8_t>("BOOL", {2}, {0, 3}).to_f64() == std::vector<double>{0.0, 1.0});
  REQUIRE_THROWS_WITH(make_tensor<uint8_t>("F8_E4M3", {1}, {0}).to_f64(), Contains("F8_E4M3"));
  REQUIRE_THROWS_WITH(make_tensor<double>("F64", {3}, {1.0, 2.0}).to_f64(), Contains("needs 24 bytes"));
}

TEST_CASE("safetensors refuses broken files, naming the file", "[safetensors]") {
  dd::test::TempDir tmp("dd_test_safetensors");
  const std::string path = tmp.file("broken.safetensors");
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  std::string contents, reason;

  SECTION("missing file") { reason = "no such file"; }
  SECTION("shorter than 8 bytes") {
    contents = std::string("\x05\0\0\0\0", 5);
    reason = "file is 5 bytes, shorter than the 8-byte header length";
  }
  SECTION("header length beyond the file") {
    contents = u64_le(1000) + "{}";
    reason = "runs past the end of the 10-byte file";
  }
  SECTION("header length that is garbage") {
    contents = u64_le(~uint64_t(0)) + "{}";
    reason = "runs past the end";
  }
  SECTION("invalid JSON") {
    contents = raw_file(R"({"t":{"dtype":"F32",)", "");
    reason = "not valid JSON";
  }
  SECTION("JSON that is not an object") {
    contents = raw_file("[1,2]", "");
    reason = "not an object";
  }
  SECTION("entry without dtype") {
    contents = raw_file(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", eight);
    reason = "tensor 't': entry has no \"dtype\"";
  }
  SECTION("entry without shape") {
    contents = raw_file(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", eight);
    reason = "entry has no \"shape\"";
  }
  SECTION("entry without data_offsets") {
    contents = raw_file(R"({"t":{"dtype":"F32","shape":[2]}})", eight);
    reason = "entry has no \"data_offsets\"";
  }
  SECTION("unknown dtype") {
    contents = raw_file(R"({"t":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", eight);
    reason = "unknown dtype 'F17'";
  }
  SECTION("negative dimension") {
    contents = raw_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight);
    reason = "non-negative integers";
  }
  SECTION("byte range not matching shape x dtype size") {
    contents = raw_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})", eight);
    reason = "span 8 bytes but F32 [2,2] needs 16";
  }
  SECTION("byte range outside the buffer") {
    contents = raw_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight);
    reason = "outside the 8-byte data buffer";
  }
  SECTION("gap between tensors") {
    contents = raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight);
    reason = "starts at buffer byte 4 but the previous tensor ends at 0";
  }
  SECTION("overlapping tensors") {
    contents = raw_file("{" + ok_entry + R"(,"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight);
    reason = "gaps and overlaps";
  }
  SECTION("trailing bytes after the last tensor") {
    contents = raw_file("{" + ok_entry + "}", eight + "xxxx");
    reason = "cover 8 bytes but the data buffer holds 12";
  }
  SECTION("metadata that is not strings") {
    contents = raw_file("{" + ok_entry + R"(,"__metadata__":{"epoch":3}})", eight);
    reason = "__metadata__ value for 'epoch' is not a string";
  }
  if (!contents.empty()) write_bytes(path, contents);
  INFO(reason);
  REQUIRE_THROWS_WITH(load_safetensors(path), Contains("'" + path + "'") && Contains(reason));
}

TEST_CASE("safetensors lookup and save errors", "[safetensors]") {
  dd::test::TempDir tmp("dd_test_safetensors");
  const std::string path = tmp.file("small.safetensors");
  SafeTensorsFile f;
  f.put_f32("down.0.weight", Tensor::zeros({2, 2}));
  f.put_f32("down.0.bias", Tensor::zeros({2}));
  save_safetensors(path, f);
  const SafeTensorsFile g = load_safetensors(path);
  REQUIRE_THROWS_WITH(g.at("down.1.weight"), Contains(path) && Contains("'down.1.weight'") &&
                                                 Contains("down.0.bias, down.0.weight"));

  REQUIRE_THROWS_WITH(f.put_i64("n", {1, 2, 3}, {2, 2}), Contains("'n'") && Contains("[2,2]"));
  REQUIRE_THROWS_WITH(f.put_f32("__metadata__", Tensor::zeros({1})), Contains("invalid tensor name"));

  SafeTensorsFile bad;
  bad.tensors["x"] = make_tensor<float>("F32", {3}, {1.0f});
  REQUIRE_THROWS_WITH(save_safetensors(tmp.file("bad.safetensors"), bad),
                      Contains("bad.safetensors") && Contains("tensor 'x'") && Contains("needs 12 bytes"));
  const std::string nowhere = tmp.path() + "/no/such/dir/w.safetensors";
  REQUIRE_THROWS_WITH(save_safetensors(nowhere, f), Contains(nowhere));
  // Failed saves leave neither the file nor a temporary behind.
  CHECK(tmp.entries() == 1);
}

TEST_CASE("safetensors interoperate with the python reader/writer", "[safetensors][python]") {
  DD_TEST_RANDOM(rng);
  dd::test::TempDir tmp("dd_test_safetensors");
  const std::string cpp_file = tmp.file("from_cpp.safetensors");
  const std::string py_file = tmp.file("from_py.safetensors");

  const std::vector<float> w = random_floats(rng, 2 * 3);
  const std::vector<float> bias = random_floats(rng, 3);
  SafeTensorsFile f;
  f.put_f32("w", Tensor::from_vector({2, 3}, w));
  f.put_f32("bias", Tensor::from_vector({3}, bias));
  f.put_f32("scalar", Tensor::scalar(1.5f));
  f.put_f32("empty", Tensor::zeros({0, 4}));
  f.put_i64("step", {123456789012345, -1}, {2});
  f.metadata = {{"format", "pt"}, {"step", "42"}};
  save_safetensors(cpp_file, f);

  // Python checks what C++ wrote, then writes its own file: the C++ tensors echoed back plus dtypes
  // only python produces here (F16, F64, I32, BOOL).
  const std::string script = str_cat(
      "import sys\n", "sys.path.insert(0, '", DD_SOURCE_DIR, "/tests/torch')\n",
      "import numpy as np\n", "import safetensors_io as st\n", "t, meta = st.load('", cpp_file, "')\n",
      "assert meta.pop('dd_data_crc32c') and meta == {'format': 'pt', 'step': '42'}, meta\n",
      "assert sorted(t) == ['bias', 'empty', 'scalar', 'step', 'w'], sorted(t)\n",
      "assert t['w'].dtype == np.float32 and t['w'].shape == (2, 3)\n",
      "assert np.array_equal(t['w'], np.array(", py_list(w), ", dtype=np.float32).reshape(2, 3)), t['w']\n",
      "assert np.array_equal(t['bias'], np.array(", py_list(bias), ", dtype=np.float32)), t['bias']\n",
      "assert t['scalar'].shape == () and t['scalar'] == np.float32(1.5)\n",
      "assert t['empty'].shape == (0, 4) and t['empty'].dtype == np.float32\n",
      "assert t['step'].dtype == np.int64 and t['step'].tolist() == [123456789012345, -1]\n",
      "out = dict(t)\n",
      "out['half'] = (np.arange(6, dtype=np.float16).reshape(2, 3) / np.float16(4) - np.float16(0.5))\n",
      "out['double'] = np.array([0.1, -3.0])\n",
      "out['idx'] = np.array([[-2, 5]], dtype=np.int32)\n",
      "out['mask'] = np.array([True, False, True])\n",
      "st.save('", py_file, "', out, {'writer': 'python', 'step': '43'})\n",
      "t2, meta2 = st.load('", py_file, "')\n",
      "assert meta2 == {'writer': 'python', 'step': '43'} and sorted(t2) == sorted(out)\n",
      "print('python ok')\n");
  CHECK_THAT(run_python(tmp, script), Contains("python ok"));

  const SafeTensorsFile g = load_safetensors(py_file);
  CHECK(g.metadata == std::map<std::string, std::string>{{"writer", "python"}, {"step", "43"}});
  for (const auto& [name, t] : f.tensors) {
    INFO(name);
    CHECK(g.at(name).dtype == t.dtype);
    CHECK(g.at(name).shape == t.shape);
    CHECK(g.at(name).bytes == t.bytes);
  }
  const SafeTensor& half = g.at("half");
  CHECK(half.dtype == "F16");
  CHECK(half.shape == Shape{2, 3});
  // (i/4 - 0.5) for i = 0..5, exact in float16.
  CHECK(half.to_f32().to_vector() == std::vector<float>{-0.5f, -0.25f, 0.0f, 0.25f, 0.5f, 0.75f});
  CHECK(g.at("double").dtype == "F64");
  CHECK(g.at("double").to_f32().to_vector() == std::vector<float>{0.1f, -3.0f});
  CHECK(g.at("idx").dtype == "I32");
  CHECK(g.at("idx").shape == Shape{1, 2});
  CHECK(g.at("idx").to_i64() == std::vector<int64_t>{-2, 5});
  CHECK(g.at("mask").dtype == "BOOL");
  CHECK(g.at("mask").to_i64() == std::vector<int64_t>{1, 0, 1});
}
