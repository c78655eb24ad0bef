// Every engine dtype through safetensors, both ways with PyTorch (tests/torch/safetensors_dtypes.py
// under Debian's python3-torch, which writes the files with tests/torch/safetensors_io.py: torch 1.13
// has no safetensors package). Each side also records the raw bits it holds in memory in a JSON file,
// so the other side checks bits, not a re-reading of the same file.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "tests/support/compare.h"
#include "tests/support/dtype_samples.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;
using json = nlohmann::json;

namespace {

// The elements' bits as unsigned integers (little-endian, dtype_size bytes each).
std::vector<uint64_t> bits_of(const Tensor& t) {
  const std::vector<uint8_t> bytes = t.to_bytes();
  const std::size_t w = t.element_size();
  std::vector<uint64_t> out(bytes.size() / w);
  for (std::size_t i = 0; i < out.size(); ++i) std::memcpy(&out[i], bytes.data() + i * w, w);
  return out;
}

// Bitwise equal, except that a NaN equals any NaN (torch writes one canonical NaN).
void check_same_floats(const std::string& what, const Tensor& ours, const Tensor& torch) {
  INFO(what);
  REQUIRE(ours.dtype() == torch.dtype());
  REQUIRE(ours.numel() == torch.numel());
  const std::vector<uint64_t> a = bits_of(ours), b = bits_of(torch);
  const std::vector<float> av = ours.to_vector(), bv = torch.to_vector();
  int64_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(av[i]) && std::isnan(bv[i])) continue;
    if (a[i] != b[i] && bad++ < 5) FAIL_CHECK("element " << i << ": ours 0x" << std::hex << a[i] << ", torch 0x" << b[i]);
  }
  CHECK(bad == 0);
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

}  // namespace

TEST_CASE("safetensors: PyTorch writes every dtype, we read the same bits", "[safetensors][python][dtype]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp("dd_test_st_dtypes");
  const std::string file = tmp.file("torch.safetensors"), bits = tmp.file("torch_bits.json");
  run_torch_script("safetensors_dtypes.py", {"write", file, bits, std::to_string(rng.engine()() % 1000000)});

  const SafeTensorsFile f = load_safetensors(file);
  const json want = read_json(bits);
  REQUIRE(f.tensors.size() == want.size());
  std::map<std::string, Tensor> t;
  for (const auto& [name, w] : want.items()) {
    INFO(name);
    DType dt;
    REQUIRE(dtype_from_safetensors(w["dtype"].get<std::string>(), dt));
    const Tensor x = f.at(name).to_tensor();
    CHECK(x.dtype() == dt);
    CHECK(x.shape() == w["shape"].get<Shape>());
    CHECK(bits_of(x) == w["bits"].get<std::vector<uint64_t>>());
    t[name] = x;
  }
  CHECK(t.at("bf16_scalar").item() == -1.5f);
  CHECK(t.at("f16_empty").shape() == Shape{0, 3});
  // Our casts give torch's bits (NaN aside) and truncate like torch.
  const Tensor src = t.at("src");
  check_same_floats("bf16", src.to(DType::BF16), t.at("bf16"));
  check_same_floats("f16", src.to(DType::F16), t.at("f16").reshape(src.shape()));
  CHECK(t.at("trunc_src").to(DType::I32).to_bytes() == t.at("trunc_i32").to_bytes());
  CHECK(t.at("trunc_src").to(DType::I64).to_bytes() == t.at("trunc_i64").to_bytes());

  // Written back by us and read again: the same tensors, bit for bit.
  SafeTensorsFile g;
  for (const auto& [name, x] : t) g.put(name, x);
  save_safetensors(tmp.file("again.safetensors"), g);
  const SafeTensorsFile h = load_safetensors(tmp.file("again.safetensors"));
  for (const auto& [name, st] : f.tensors) {
    INFO(name);
    CHECK(h.at(name).dtype == st.dtype);
    CHECK(h.at(name).shape == st.shape);
    CHECK(h.at(name).bytes == st.bytes);
  }
}

TEST_CASE("safetensors: we write every dtype, PyTorch reads the same values", "[safetensors][python][dtype]") {
  DD_TEST_RANDOM(rng);
  TempDir tmp("dd_test_st_dtypes");
  const std::string file = tmp.file("ours.safetensors"), bits = tmp.file("our_bits.json");

  std::map<std::string, Tensor> t;
  const std::vector<uint8_t> src_bytes = dtype_samples(DType::F32, 4001, rng.engine()());
  t["src"] = Tensor::from_raw({4001}, DType::F32, src_bytes.data());
  t["bf16"] = t["src"].to(DType::BF16);
  t["f16"] = t["src"].to(DType::F16).reshape({1, 4001});
  std::vector<float> finite;
  for (double v : rng.uniform(500, -3e6, 3e6)) finite.push_back(static_cast<float>(v));
  t["trunc_src"] = Tensor::from_vector({500}, finite);
  t["trunc_i32"] = t["trunc_src"].to(DType::I32);
  t["trunc_i64"] = t["trunc_src"].to(DType::I64).reshape({5, 10, 10});
  const std::vector<uint8_t> i32 = dtype_samples(DType::I32, 21, rng.engine()());
  t["i32"] = Tensor::from_raw({7, 3}, DType::I32, i32.data());
  // A view into a larger buffer: only its window is written.
  const std::vector<uint8_t> i64 = dtype_samples(DType::I64, 120, rng.engine()());
  t["i64"] = Tensor::view_of(Tensor::from_raw({120}, DType::I64, i64.data()), 10, {100});
  t["bf16_scalar"] = Tensor::full({}, -1.5f, Device::CPU, DType::BF16);
  t["f16_empty"] = Tensor::zeros({0, 3}, Device::CPU, DType::F16);

  SafeTensorsFile f;
  json want = json::object();
  for (const auto& [name, x] : t) {
    f.put(name, x);
    want[name] = {{"dtype", dtype_safetensors_name(x.dtype())}, {"shape", x.shape()}, {"bits", bits_of(x)}};
  }
  CHECK(f.at("bf16").dtype == "BF16");
  CHECK(f.at("i64").bytes.size() == 800);
  CHECK(f.at("i64").to_tensor().to_bytes() ==
        std::vector<uint8_t>(i64.begin() + 80, i64.begin() + 880));
  save_safetensors(file, f);
  std::ofstream(bits) << want.dump();
  const std::string out = run_torch_script("safetensors_dtypes.py", {"check", file, bits});
  CHECK_THAT(out, Catch::Contains("torch read ok: 10 tensors"));
}

TEST_CASE("safetensors: to_tensor keeps the dtype, put stores it, to_f32/put_f32 still convert", "[safetensors][dtype]") {
  SafeTensor st;
  st.dtype = "BF16";
  st.shape = {2};
  st.bytes = {0x80, 0x3f, 0x20, 0xc0};  // 1.0, -2.5
  const Tensor b = st.to_tensor();
  CHECK(b.dtype() == DType::BF16);
  CHECK(b.to_vector() == std::vector<float>{1.0f, -2.5f});
  CHECK(st.to_f32().dtype() == DType::F32);
  CHECK(st.to_f32().to_vector() == std::vector<float>{1.0f, -2.5f});
  SafeTensorsFile f;
  f.put_f32("as_f32", b);
  f.put("as_bf16", b);
  CHECK(f.at("as_f32").dtype == "F32");
  CHECK(f.at("as_f32").bytes.size() == 8);
  CHECK(f.at("as_bf16").dtype == "BF16");
  CHECK(f.at("as_bf16").bytes == st.bytes);
  st.dtype = "F64";
  st.bytes.resize(16);
  REQUIRE_THROWS_WITH(st.to_tensor(), Catch::Contains("F64") && Catch::Contains("to_f32"));
  st.dtype = "I16";
  st.bytes.resize(4);
  REQUIRE_THROWS_WITH(st.to_tensor(), Catch::Contains("I16"));
  REQUIRE_THROWS_WITH(f.put("x", Tensor()), Catch::Contains("undefined"));
}
