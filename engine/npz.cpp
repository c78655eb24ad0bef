#include "engine/npz.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/dtype.h"
#include "engine/durable_file.h"
#include "engine/error.h"
#include "engine/le_bytes.h"

// Both formats are little-endian; the array bytes are memcpy'd as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy/npz I/O assumes a little-endian host");

namespace dd::npz {
namespace {

using namespace dd::le_bytes;

namespace fs = std::filesystem;

const char kNpyMagic[] = "\x93NUMPY";
constexpr std::size_t kNpyMagicLen = 6;
constexpr std::size_t kNpyAlign = 64;          // numpy.lib.format.ARRAY_ALIGN
constexpr std::size_t kGrowthAxisDigits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// ---- the .npy header: a Python dict literal -------------------------------------------------

struct HeaderParser {
  const std::string& text;
  const std::string& where;
  std::size_t pos = 0;

  [[noreturn]] void fail(const std::string& what) const {
    DD_FAIL(where, ": .npy header ", what, " at byte ", pos, " of \"", printable(text, 160), "\"");
  }
  void skip_ws() {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
      ++pos;
  }
  bool peek(char c) {
    skip_ws();
    return pos < text.size() && text[pos] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(str_cat("expects '", c, "'"));
    ++pos;
  }
  std::string string_literal() {
    skip_ws();
    if (pos >= text.size() || (text[pos] != '\'' && text[pos] != '"')) fail("expects a quoted string");
    const char q = text[pos++];
    const std::size_t begin = pos;
    while (pos < text.size() && text[pos] != q) {
      if (text[pos] == '\\') fail("has an escape sequence in a string (not supported)");
      ++pos;
    }
    if (pos >= text.size()) fail("has an unterminated string");
    return text.substr(begin, pos++ - begin);
  }
  bool word(const char* w) {
    skip_ws();
    const std::size_t n = std::strlen(w);
    if (text.compare(pos, n, w) != 0) return false;
    pos += n;
    return true;
  }
  int64_t integer() {
    skip_ws();
    const std::size_t begin = pos;
    uint64_t v = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, static_cast<uint64_t>(text[pos] - '0'), &v) ||
          v > static_cast<uint64_t>(INT64_MAX))
        fail("has a dimension beyond int64");
      ++pos;
    }
    if (pos == begin) fail("expects a non-negative integer in the shape");
    if (pos < text.size() && text[pos] == 'L') ++pos;  // Python 2's long literal, in old files
    return static_cast<int64_t>(v);
  }
  std::vector<int64_t> shape_tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (!peek(')')) {
      dims.push_back(integer());
      if (dims.size() > 64) fail("has more than 64 dimensions");
      if (peek(',')) {
        ++pos;
      } else if (!peek(')')) {
        fail("expects ',' or ')' in the shape");
      }
    }
    ++pos;
    return dims;
  }
};

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

NpyHeader parse_header_dict(const std::string& text, const std::string& where) {
  HeaderParser p{text, where};
  NpyHeader h;
  std::set<std::string> seen;
  p.expect('{');
  while (!p.peek('}')) {
    const std::string key = p.string_literal();
    if (!seen.insert(key).second) p.fail("repeats the key '" + printable(key) + "'");
    p.expect(':');
    if (key == "descr") {
      if (p.peek('[')) p.fail("has a structured dtype (a list of fields; not supported)");
      h.descr = p.string_literal();
    } else if (key == "fortran_order") {
      if (p.word("True")) {
        h.fortran_order = true;
      } else if (p.word("False")) {
        h.fortran_order = false;
      } else {
        p.fail("expects True or False for 'fortran_order'");
      }
    } else if (key == "shape") {
      h.shape = p.shape_tuple();
    } else {
      p.fail("has the unexpected key '" + printable(key) + "' (numpy writes only descr, fortran_order, shape)");
    }
    if (p.peek(',')) {
      ++p.pos;
    } else if (!p.peek('}')) {
      p.fail("expects ',' or '}'");
    }
  }
  ++p.pos;
  p.skip_ws();
  if (p.pos != text.size()) p.fail("has text after the closing '}'");
  for (const char* key : {"descr", "fortran_order", "shape"})
    DD_CHECK(seen.count(key), where, ": .npy header has no '", key, "' (it reads \"", printable(text, 160), "\")");
  return h;
}

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::vector<uint8_t> read_whole_file(const std::string& path, const std::string& where) {
  std::error_code ec;
  DD_CHECK(fs::exists(path, ec), where, ": no such file");
  DD_CHECK(fs::is_regular_file(path, ec), where, ": not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  DD_CHECK(!ec, where, ": cannot read its size: ", ec.message());
  std::ifstream in(path, std::ios::binary);
  DD_CHECK(in.good(), where, ": cannot open: ", std::strerror(errno));
  std::vector<uint8_t> bytes(size);
  if (size) in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  DD_CHECK(size == 0 || in.gcount() == static_cast<std::streamsize>(size), where, ": read only ", in.gcount(), " of ",
           size, " bytes");
  return bytes;
}

}  // namespace

// ---- .npy ---------------------------------------------------------------------------------------

int64_t npy_dtype_size(const std::string& d) {
  if (d.size() != 3) return 0;
  const char order = d[0], kind = d[1], digit = d[2];
  if (digit < '1' || digit > '9') return 0;
  const int64_t size = digit - '0';
  const bool ok_kind = (kind == 'f' && (size == 2 || size == 4 || size == 8)) ||
                       ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                       (kind == 'b' && size == 1);
  if (!ok_kind) return 0;
  // Multi-byte values must be little-endian; a single byte has no order ('|', though '<', '>' and
  // '=' mean the same).
  if (size == 1) return (order == '|' || order == '<' || order == '>' || order == '=') ? 1 : 0;
  return order == '<' ? size : 0;
}

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    DD_CHECK(d >= 0, "npy array: negative dimension in ", shape_repr(shape));
    DD_CHECK(!__builtin_mul_overflow(n, d, &n), "npy array: shape ", shape_repr(shape), " overflows");
  }
  return n;
}

std::vector<double> NpyArray::to_f64(const std::string& where) const {
  const int64_t size = npy_dtype_size(descr);
  DD_CHECK(size > 0, where, ": dtype '", printable(descr), "' cannot be read as float64");
  const int64_t n = numel();
  DD_CHECK(static_cast<int64_t>(bytes.size()) == n * size, where, ": '", descr, "' ", shape_repr(shape), " needs ",
           n * size, " bytes but holds ", bytes.size());
  std::vector<double> out(static_cast<std::size_t>(n));
  const uint8_t* p = bytes.data();
  const char kind = descr[1];
  auto each = [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));
      out[i] = static_cast<double>(v);
    }
  };
  if (kind == 'f' && size == 8) {
    if (n) std::memcpy(out.data(), p, bytes.size());
  } else if (kind == 'f' && size == 4) {
    each(float{});
  } else if (kind == 'f' && size == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = dtype_conv::f16_to_f32(h);
    }
  } else if (kind == 'b') {
    for (int64_t i = 0; i < n; ++i) out[i] = p[i] != 0 ? 1.0 : 0.0;
  } else if (kind == 'i') {
    if (size == 8) each(int64_t{});
    if (size == 4) each(int32_t{});
    if (size == 2) each(int16_t{});
    if (size == 1) each(int8_t{});
  } else {
    if (size == 8) each(uint64_t{});
    if (size == 4) each(uint32_t{});
    if (size == 2) each(uint16_t{});
    if (size == 1) each(uint8_t{});
  }
  return out;
}

NpyArray npy_from_f64(const std::vector<double>& values, const std::vector<int64_t>& shape) {
  for (int64_t d : shape) DD_CHECK(d >= 0, "npy_from_f64: negative dimension in ", shape_repr(shape));
  NpyArray a;
  a.descr = "<f8";
  a.shape = shape;
  DD_CHECK(a.numel() == static_cast<int64_t>(values.size()), "npy_from_f64: shape ", shape_repr(shape), " holds ",
           a.numel(), " values but ", values.size(), " were given");
  a.bytes.resize(values.size() * sizeof(double));
  if (!values.empty()) std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
  return a;
}

NpyArray parse_npy(const uint8_t* data, std::size_t size, const std::string& where) {
  DD_CHECK(size >= kNpyMagicLen + 4, where, ": ", size, " bytes, too short for an .npy file (magic, version, header "
           "length)");
  DD_CHECK(std::memcmp(data, kNpyMagic, kNpyMagicLen) == 0, where, ": not an .npy file (no \\x93NUMPY magic)");
  const int major = data[6], minor = data[7];
  DD_CHECK((major >= 1 && major <= 3) && minor == 0, where, ": .npy format version ", major, ".", minor,
           " is not supported (1.0, 2.0 and 3.0 are)");
  std::size_t hstart = 10;
  uint64_t hlen = u16_at(data + 8);
  if (major >= 2) {
    DD_CHECK(size >= 12, where, ": ", size, " bytes, too short for a version ", major, " .npy header length");
    hlen = u32_at(data + 8);
    hstart = 12;
  }
  DD_CHECK(hlen <= size - hstart, where, ": the .npy header claims ", hlen, " bytes but only ", size - hstart,
           " follow");
  const std::string text(reinterpret_cast<const char*>(data + hstart), static_cast<std::size_t>(hlen));
  const NpyHeader h = parse_header_dict(text, where);

  NpyArray a;
  a.descr = h.descr;
  a.shape = h.shape;
  const int64_t elem = npy_dtype_size(h.descr);
  DD_CHECK(elem > 0, where, ": dtype '", printable(h.descr), "' is not supported (little-endian f8, f4, f2, i8..i1, ",
           "u8..u1, b1 are)");
  DD_CHECK(!h.fortran_order, where, ": the array is in Fortran order (fortran_order True), which is not supported; ",
           "save it with np.ascontiguousarray");
  uint64_t numel = 1;
  for (int64_t d : h.shape)
    DD_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel), where, ": shape ",
             shape_repr(h.shape), " overflows");
  uint64_t nbytes = 0;
  DD_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(elem), &nbytes), where, ": shape ",
           shape_repr(h.shape), " overflows");
  const uint64_t have = size - hstart - hlen;
  DD_CHECK(have == nbytes, where, ": '", h.descr, "' ", shape_repr(h.shape), " needs ", nbytes,
           " data bytes but the file holds ", have, have < nbytes ? " (truncated)" : "");
  a.bytes.assign(data + hstart + hlen, data + size);
  return a;
}

std::vector<uint8_t> encode_npy(const NpyArray& a) {
  const int64_t elem = npy_dtype_size(a.descr);
  DD_CHECK(elem > 0, "encode_npy: dtype '", printable(a.descr), "' is not supported");
  for (int64_t d : a.shape) DD_CHECK(d >= 0, "encode_npy: negative dimension in ", shape_repr(a.shape));
  DD_CHECK(static_cast<int64_t>(a.bytes.size()) == a.numel() * elem, "encode_npy: '", a.descr, "' ",
           shape_repr(a.shape), " needs ", a.numel() * elem, " bytes but holds ", a.bytes.size());
  // What numpy.lib.format._write_array_header writes: the sorted keys, spare spaces for the first
  // axis to grow to 21 digits, then padding to a multiple of 64 bytes ending in '\n'.
  std::string header = "{'descr': '" + a.descr + "', 'fortran_order': False, 'shape': " + shape_repr(a.shape) + ", }";
  if (!a.shape.empty()) {
    const std::size_t digits = std::to_string(a.shape[0]).size();
    header.append(digits < kGrowthAxisDigits ? kGrowthAxisDigits - digits : 0, ' ');
  }
  int major = 1;
  std::size_t prefix = kNpyMagicLen + 2 + 2;
  if (header.size() + 1 + kNpyAlign > 0xffff) {
    major = 2;
    prefix = kNpyMagicLen + 2 + 4;
  }
  const std::size_t hlen = header.size() + 1;
  const std::size_t pad = kNpyAlign - (prefix + hlen) % kNpyAlign;
  header.append(pad, ' ');
  header += '\n';
  std::vector<uint8_t> out(kNpyMagic, kNpyMagic + kNpyMagicLen);
  out.push_back(static_cast<uint8_t>(major));
  out.push_back(0);
  if (major == 1) {
    put_u16(out, static_cast<uint32_t>(header.size()));
  } else {
    put_u32(out, static_cast<uint32_t>(header.size()));
  }
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), a.bytes.begin(), a.bytes.end());
  return out;
}

// ---- .npz ---------------------------------------------------------------------------------------

std::map<std::string, NpyArray> parse_npz(const uint8_t* data, std::size_t size, const std::string& where) {
  if (size >= kNpyMagicLen && std::memcmp(data, kNpyMagic, kNpyMagicLen) == 0)
    DD_FAIL(where, ": this is an .npy file (one array), not an .npz archive");
  std::map<std::string, NpyArray> out;
  for (const ZipMember& m : parse_zip(data, size, where)) {
    const std::string what = where + ": member '" + printable(m.name) + "'";
    const std::string suffix = ".npy";
    DD_CHECK(m.name.size() > suffix.size() && m.name.compare(m.name.size() - suffix.size(), suffix.size(), suffix) == 0,
             what, " is not an .npy file (an .npz holds KEY.npy members)");
    const std::string key = m.name.substr(0, m.name.size() - suffix.size());
    out.emplace(key, parse_npy(m.data.data(), m.data.size(), what));
  }
  return out;
}

std::map<std::string, NpyArray> load_npz(const std::string& path) {
  const std::string where = "load_npz " + quoted(path);
  const std::vector<uint8_t> bytes = read_whole_file(path, where);
  return parse_npz(bytes.data(), bytes.size(), where);
}

void save_npz(const std::string& path, const std::map<std::string, NpyArray>& arrays) {
  std::vector<ZipMember> members;
  for (const auto& [key, a] : arrays) {
    DD_CHECK(!key.empty(), "save_npz ", quoted(path), ": empty array name");
    ZipMember m;
    m.name = key + ".npy";
    try {
      m.data = encode_npy(a);
    } catch (const Error& e) {
      DD_FAIL("save_npz ", quoted(path), ": array '", key, "': ", e.what());
    }
    members.push_back(std::move(m));
  }
  const std::vector<uint8_t> bytes = encode_zip(members);
  write_file_durably(path, {{bytes.data(), bytes.size()}}, "save_npz");
}

}  // namespace dd::npz
