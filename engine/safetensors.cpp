#include "engine/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/crc32c.h"
#include "engine/durable_file.h"
#include "engine/error.h"

// The format is little-endian and tensors are kept as raw bytes that to_f32/to_i64 memcpy.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace dd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* const kMetadataKey = "__metadata__";
// The data buffer's CRC-32C, 8 hex digits, in every file we write; verified (and dropped from the
// metadata the caller sees) on load.
const char* const kChecksumKey = "dd_data_crc32c";

// The reference library rejects headers above 100 MB; a larger one is a corrupt length field,
// and refusing it early avoids a giant allocation.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Entry {
  std::string name;
  uint64_t begin = 0, end = 0;
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }

template <typename T>
T load_as(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Calls fn(i, value_as_double_or_int) for every element; returns false for dtypes it cannot read.
template <typename Fn>
bool for_each_value(const SafeTensor& t, Fn&& fn) {
  const uint8_t* p = t.bytes.data();
  const int64_t n = t.numel();
  const std::string& d = t.dtype;
#define DD_ST_CASE(NAME, TYPE)                                                        \
  if (d == NAME) {                                                                    \
    for (int64_t i = 0; i < n; ++i) fn(i, load_as<TYPE>(p + i * sizeof(TYPE)));       \
    return true;                                                                      \
  }
  DD_ST_CASE("F32", float)
  DD_ST_CASE("F64", double)
  DD_ST_CASE("I64", int64_t)
  DD_ST_CASE("I32", int32_t)
  DD_ST_CASE("I16", int16_t)
  DD_ST_CASE("I8", int8_t)
  DD_ST_CASE("U8", uint8_t)
  DD_ST_CASE("U16", uint16_t)
  DD_ST_CASE("U32", uint32_t)
  DD_ST_CASE("U64", uint64_t)
#undef DD_ST_CASE
  if (d == "BOOL") {
    for (int64_t i = 0; i < n; ++i) fn(i, static_cast<uint8_t>(p[i] != 0));
    return true;
  }
  if (d == "F16" || d == "BF16") {
    const bool half = d == "F16";
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = load_as<uint16_t>(p + 2 * i);
      fn(i, half ? dtype_conv::f16_to_f32(h) : dtype_conv::bf16_to_f32(h));
    }
    return true;
  }
  return false;
}

void check_bytes_match(const SafeTensor& t, const char* what) {
  const int64_t size = safetensors_dtype_size(t.dtype);
  DD_CHECK(size > 0, what, ": unknown dtype '", t.dtype, "'");
  for (int64_t d : t.shape) DD_CHECK(d >= 0, what, ": negative dimension in shape ", shape_str(t.shape));
  DD_CHECK(static_cast<int64_t>(t.bytes.size()) == t.numel() * size, what, ": ", t.dtype, " ",
           shape_str(t.shape), " needs ", t.numel() * size, " bytes but holds ", t.bytes.size());
}

// A non-negative JSON integer, or nothing (a float, a string, a negative number ...).
bool json_to_u64(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

}  // namespace

int64_t safetensors_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E5M2" || d == "F8_E4M3") return 1;
  return 0;
}

Tensor SafeTensor::to_f32() const {
  check_bytes_match(*this, "SafeTensor::to_f32");
  Tensor out = Tensor::empty(shape);
  float* o = out.data();
  if (dtype == "F32") {
    if (!bytes.empty()) std::memcpy(o, bytes.data(), bytes.size());
    return out;
  }
  const bool known = for_each_value(*this, [&](int64_t i, auto v) { o[i] = static_cast<float>(v); });
  DD_CHECK(known, "SafeTensor::to_f32: cannot convert dtype ", dtype,
           " to float32 (supported: F32, F64, F16, BF16, I64, I32, I16, I8, U8, U16, U32, U64, BOOL)");
  return out;
}

std::vector<int64_t> SafeTensor::to_i64() const {
  check_bytes_match(*this, "SafeTensor::to_i64");
  std::vector<int64_t> out(static_cast<size_t>(numel()));
  const bool known = for_each_value(*this, [&](int64_t i, auto v) {
    using V = decltype(v);
    if constexpr (std::is_floating_point_v<V>) {
      // 2^63 is exactly representable; int64 holds [-2^63, 2^63).
      const double x = static_cast<double>(v);
      DD_CHECK(std::isfinite(x) && std::trunc(x) == x && x >= -9223372036854775808.0 && x < 9223372036854775808.0,
               "SafeTensor::to_i64: ", dtype, " element ", i, " is ", x, ", not an integer in int64 range");
      out[i] = static_cast<int64_t>(x);
    } else if constexpr (std::is_same_v<V, uint64_t>) {
      DD_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "SafeTensor::to_i64: U64 element ",
               i, " is ", v, ", beyond int64");
      out[i] = static_cast<int64_t>(v);
    } else {
      out[i] = static_cast<int64_t>(v);
    }
  });
  DD_CHECK(known, "SafeTensor::to_i64: cannot convert dtype ", dtype, " to int64");
  return out;
}

std::vector<double> SafeTensor::to_f64() const {
  check_bytes_match(*this, "SafeTensor::to_f64");
  std::vector<double> out(static_cast<size_t>(numel()));
  if (dtype == "F64") {
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
  const bool known = for_each_value(*this, [&](int64_t i, auto v) { out[i] = static_cast<double>(v); });
  DD_CHECK(known, "SafeTensor::to_f64: cannot convert dtype ", dtype,
           " to float64 (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, U16, U32, U64, BOOL)");
  return out;
}

Tensor SafeTensor::to_tensor(Device dev) const {
  check_bytes_match(*this, "SafeTensor::to_tensor");
  DType dt;
  DD_CHECK(dtype_from_safetensors(dtype, dt), "SafeTensor::to_tensor: dtype ", dtype,
           " is not an engine dtype (F32, BF16, F16, I32, I64); to_f32() converts it to F32");
  return Tensor::from_raw(shape, dt, bytes.data(), dev);
}

void SafeTensorsFile::put_f32(const std::string& name, const Tensor& t) {
  DD_CHECK(t.defined(), "SafeTensorsFile::put_f32 '", name, "': undefined tensor");
  put(name, t.to(DType::F32));
}

void SafeTensorsFile::put(const std::string& name, const Tensor& t) {
  DD_CHECK(t.defined(), "SafeTensorsFile::put '", name, "': undefined tensor");
  DD_CHECK(!name.empty() && name != kMetadataKey, "SafeTensorsFile::put: invalid tensor name '", name, "'");
  SafeTensor st;
  st.dtype = dtype_safetensors_name(t.dtype());
  st.shape = t.shape();
  st.bytes = t.to_bytes();
  tensors[name] = std::move(st);
}

void SafeTensorsFile::put_i64(const std::string& name, const std::vector<int64_t>& values,
                              const std::vector<int64_t>& shape) {
  DD_CHECK(!name.empty() && name != kMetadataKey, "SafeTensorsFile::put_i64: invalid tensor name '", name, "'");
  for (int64_t d : shape) DD_CHECK(d >= 0, "SafeTensorsFile::put_i64 '", name, "': negative dimension in ", shape_str(shape));
  DD_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "SafeTensorsFile::put_i64 '", name, "': shape ",
           shape_str(shape), " holds ", shape_numel(shape), " values but ", values.size(), " were given");
  SafeTensor st;
  st.dtype = "I64";
  st.shape = shape;
  st.bytes.resize(values.size() * sizeof(int64_t));
  if (!values.empty()) std::memcpy(st.bytes.data(), values.data(), st.bytes.size());
  tensors[name] = std::move(st);
}

void SafeTensorsFile::put_f64(const std::string& name, const std::vector<double>& values,
                              const std::vector<int64_t>& shape) {
  DD_CHECK(!name.empty() && name != kMetadataKey, "SafeTensorsFile::put_f64: invalid tensor name '", name, "'");
  for (int64_t d : shape) DD_CHECK(d >= 0, "SafeTensorsFile::put_f64 '", name, "': negative dimension in ", shape_str(shape));
  DD_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "SafeTensorsFile::put_f64 '", name, "': shape ",
           shape_str(shape), " holds ", shape_numel(shape), " values but ", values.size(), " were given");
  SafeTensor st;
  st.dtype = "F64";
  st.shape = shape;
  st.bytes.resize(values.size() * sizeof(double));
  if (!values.empty()) std::memcpy(st.bytes.data(), values.data(), st.bytes.size());
  tensors[name] = std::move(st);
}

const SafeTensor& SafeTensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it != tensors.end()) return it->second;
  std::string names;
  for (const auto& [n, t] : tensors) names += (names.empty() ? "" : ", ") + n;
  DD_FAIL("safetensors ", source.empty() ? std::string("(in memory)") : quoted(source), ": no tensor '", name,
          "'; it holds ", tensors.size(), " tensor(s): ", names.empty() ? "(none)" : names);
}

SafeTensorsFile load_safetensors(const std::string& path) {
  const std::string where = "load_safetensors " + quoted(path);
  std::error_code ec;
  DD_CHECK(fs::exists(path, ec), where, ": no such file");
  DD_CHECK(fs::is_regular_file(path, ec), where, ": not a regular file");
  const uint64_t file_size = fs::file_size(path, ec);
  DD_CHECK(!ec, where, ": cannot read its size: ", ec.message());
  std::ifstream in(path, std::ios::binary);
  DD_CHECK(in.good(), where, ": cannot open: ", std::strerror(errno));
  DD_CHECK(file_size >= 8, where, ": file is ", file_size, " bytes, shorter than the 8-byte header length");

  uint8_t len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  DD_CHECK(in.good(), where, ": read error in the header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  DD_CHECK(header_len <= file_size - 8, where, ": header length ", header_len, " runs past the end of the ",
           file_size, "-byte file");
  DD_CHECK(header_len <= kMaxHeaderBytes, where, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes,
           "-byte limit");

  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  DD_CHECK(in.good() || header_len == 0, where, ": read error in the header");
  json j;
  try {
    j = json::parse(header);
  } catch (const json::exception& e) {
    DD_FAIL(where, ": header is not valid JSON: ", e.what());
  }
  DD_CHECK(j.is_object(), where, ": header is JSON but not an object");

  const uint64_t buffer_len = file_size - 8 - header_len;
  SafeTensorsFile out;
  out.source = path;
  std::vector<Entry> entries;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == kMetadataKey) {
      if (v.is_null()) continue;
      DD_CHECK(v.is_object(), where, ": __metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        DD_CHECK(m.value().is_string(), where, ": __metadata__ value for '", m.key(), "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = where + ": tensor '" + name + "'";
    DD_CHECK(v.is_object(), what, ": entry is not an object");
    for (const char* key : {"dtype", "shape", "data_offsets"})
      DD_CHECK(v.contains(key), what, ": entry has no \"", key, "\"");
    DD_CHECK(v["dtype"].is_string(), what, ": dtype is not a string");
    SafeTensor t;
    t.dtype = v["dtype"].get<std::string>();
    const int64_t elem = safetensors_dtype_size(t.dtype);
    DD_CHECK(elem > 0, what, ": unknown dtype '", t.dtype, "'");

    DD_CHECK(v["shape"].is_array(), what, ": shape is not an array");
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      uint64_t dim = 0;
      DD_CHECK(json_to_u64(d, dim) && dim <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), what,
               ": shape ", v["shape"].dump(), " is not a list of non-negative integers");
      DD_CHECK(!__builtin_mul_overflow(numel, dim, &numel), what, ": shape ", v["shape"].dump(), " overflows");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    DD_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(elem), &nbytes), what, ": shape ",
             v["shape"].dump(), " overflows");

    const json& off = v["data_offsets"];
    Entry e;
    e.name = name;
    DD_CHECK(off.is_array() && off.size() == 2 && json_to_u64(off[0], e.begin) && json_to_u64(off[1], e.end), what,
             ": data_offsets ", off.dump(), " is not a pair of non-negative integers");
    DD_CHECK(e.begin <= e.end, what, ": data_offsets [", e.begin, ",", e.end, "] end before they begin");
    DD_CHECK(e.end - e.begin == nbytes, what, ": data_offsets [", e.begin, ",", e.end, "] span ", e.end - e.begin,
             " bytes but ", t.dtype, " ", shape_str(t.shape), " needs ", nbytes);
    DD_CHECK(e.end <= buffer_len, what, ": data_offsets [", e.begin, ",", e.end, "] lie outside the ", buffer_len,
             "-byte data buffer");
    t.bytes.resize(nbytes);
    out.tensors.emplace(name, std::move(t));
    entries.push_back(e);
  }

  // Like the reference library: the tensors must tile the buffer exactly, with no gaps, overlaps or
  // trailing bytes, so every byte of the file is accounted for. Reading in offset order is then one
  // sequential pass.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t pos = 0;
  uint32_t crc = 0;
  for (const Entry& e : entries) {
    DD_CHECK(e.begin == pos, where, ": tensor '", e.name, "' starts at buffer byte ", e.begin,
             " but the previous tensor ends at ", pos, " (gaps and overlaps are not allowed)");
    pos = e.end;
    SafeTensor& t = out.tensors.at(e.name);
    if (t.bytes.empty()) continue;
    in.read(reinterpret_cast<char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    DD_CHECK(in.good(), where, ": read error in tensor '", e.name, "'");
    crc = crc32c_extend(crc, t.bytes.data(), t.bytes.size());
  }
  DD_CHECK(pos == buffer_len, where, ": the tensors cover ", pos, " bytes but the data buffer holds ", buffer_len);
  // Files we write carry the data's checksum (files from elsewhere do not, and load as they are).
  const auto sum = out.metadata.find(kChecksumKey);
  if (sum != out.metadata.end()) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", crc);
    DD_CHECK(sum->second == hex, where, ": corrupted: the data's CRC-32C is ", hex, " but the file recorded ",
             sum->second, " (a damaged or partly overwritten file; use an older copy)");
    out.metadata.erase(sum);
  }
  return out;
}

void save_safetensors(const std::string& path, const SafeTensorsFile& f) {
  const std::string where = "save_safetensors " + quoted(path);
  // Largest element first, then by name: with the buffer start 8-aligned and no gaps (which the
  // reference reader rejects), every tensor then starts at a multiple of its element size.
  std::vector<std::string> order;
  for (const auto& [name, t] : f.tensors) {
    DD_CHECK(!name.empty() && name != kMetadataKey, where, ": invalid tensor name '", name, "'");
    check_bytes_match(t, (where + ": tensor '" + name + "'").c_str());
    order.push_back(name);
  }
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    return safetensors_dtype_size(f.tensors.at(a).dtype) > safetensors_dtype_size(f.tensors.at(b).dtype);
  });

  json header = json::object();
  uint64_t offset = 0;
  for (const std::string& name : order) {
    const SafeTensor& t = f.tensors.at(name);
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  uint32_t crc = 0;
  for (const std::string& name : order) {
    const auto& bytes = f.tensors.at(name).bytes;
    crc = crc32c_extend(crc, bytes.data(), bytes.size());
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08x", crc);
  std::map<std::string, std::string> metadata = f.metadata;
  metadata[kChecksumKey] = hex;
  header[kMetadataKey] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    DD_FAIL(where, ": cannot encode the header (names and metadata must be UTF-8): ", e.what());
  }
  // Spaces pad the header so the data buffer starts 8-byte aligned; JSON ignores them.
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  std::vector<std::pair<const void*, std::size_t>> pieces{{len_bytes, 8}, {text.data(), text.size()}};
  for (const std::string& name : order) {
    const auto& bytes = f.tensors.at(name).bytes;
    pieces.emplace_back(bytes.data(), bytes.size());
  }
  write_file_durably(path, pieces, "save_safetensors");
}

}  // namespace dd
