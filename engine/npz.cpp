#include "engine/npz.h"

#include <zlib.h>

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

// Both formats are little-endian; the array bytes are memcpy'd as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy/npz I/O assumes a little-endian host");

namespace dd::npz {
namespace {

namespace fs = std::filesystem;

const char kNpyMagic[] = "\x93NUMPY";
constexpr std::size_t kNpyMagicLen = 6;
constexpr std::size_t kNpyAlign = 64;          // numpy.lib.format.ARRAY_ALIGN
constexpr std::size_t kGrowthAxisDigits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::size_t kLocalLen = 30, kCentralLen = 46, kEndLen = 22, kZip64LocatorLen = 20;
// Deflate cannot expand a stream by more than about 1032:1; a member that claims more is corrupt,
// and refusing it before allocating keeps a tiny file from asking for gigabytes.
constexpr uint64_t kMaxDeflateRatio = 1032;

uint16_t u16_at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32_at(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
void put_u16(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  put_u16(out, v & 0xffff);
  put_u16(out, v >> 16);
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// A printable rendering of a few bytes of an untrusted name or header for error messages.
std::string printable(const std::string& s, std::size_t max = 80) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

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

// ---- zip ---------------------------------------------------------------------------------------

struct CentralEntry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0, comp = 0, uncomp = 0, local_offset = 0;
  uint64_t data_begin = 0, data_end = 0;  // filled from the local header
};

std::vector<uint8_t> inflate_member(const uint8_t* src, uint32_t comp, uint32_t uncomp, const std::string& what) {
  // uncomp < 0xffffffff (zip64 markers are rejected before): one spare byte detects a stream that
  // inflates to more than it declares.
  std::vector<uint8_t> out(static_cast<std::size_t>(uncomp) + 1);
  z_stream zs{};
  DD_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, what, ": zlib inflateInit2 failed");
  zs.next_in = const_cast<Bytef*>(src);
  zs.avail_in = comp;
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  const uint64_t produced = zs.total_out, consumed = zs.total_in;
  const std::string msg = zs.msg ? std::string(" (zlib: ") + zs.msg + ")" : std::string();
  inflateEnd(&zs);
  DD_CHECK(produced <= uncomp, what, ": inflates to more than the ", uncomp, " bytes it declares");
  DD_CHECK(rc == Z_STREAM_END, what, ": the deflate stream is ",
           rc == Z_DATA_ERROR ? "corrupt" : (rc == Z_BUF_ERROR ? "truncated" : "unreadable"), msg, " (",
           produced, " of ", uncomp, " bytes inflated)");
  DD_CHECK(produced == uncomp, what, ": inflates to ", produced, " bytes but declares ", uncomp);
  DD_CHECK(consumed == comp, what, ": the deflate stream ends after ", consumed, " of its ", comp, " bytes");
  out.resize(uncomp);
  return out;
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

// ---- zip ----------------------------------------------------------------------------------------

std::vector<ZipMember> parse_zip(const uint8_t* data, std::size_t size, const std::string& where) {
  if (size >= kNpyMagicLen && std::memcmp(data, kNpyMagic, kNpyMagicLen) == 0)
    DD_FAIL(where, ": this is an .npy file (one array), not an .npz archive");
  DD_CHECK(size >= kEndLen, where, ": ", size, " bytes: not a zip archive, or a truncated one (too short for its end ",
           "record)");
  // The end-of-central-directory record: the last one whose comment runs exactly to the end.
  std::size_t end = SIZE_MAX;
  const std::size_t lowest = size - kEndLen > 0xffff ? size - kEndLen - 0xffff : 0;
  for (std::size_t p = size - kEndLen + 1; p-- > lowest;) {
    if (u32_at(data + p) == kEndSig && p + kEndLen + u16_at(data + p + 20) == size) {
      end = p;
      break;
    }
  }
  DD_CHECK(end != SIZE_MAX, where, ": not a zip archive, or a truncated one (no end-of-central-directory record)");
  const uint8_t* e = data + end;
  const uint16_t disk = u16_at(e + 4), cd_disk = u16_at(e + 6), n_here = u16_at(e + 8), n_total = u16_at(e + 10);
  const uint32_t cd_size = u32_at(e + 12), cd_offset = u32_at(e + 16);
  const bool zip64_locator = end >= kZip64LocatorLen && u32_at(data + end - kZip64LocatorLen) == kZip64LocatorSig;
  DD_CHECK(!zip64_locator && n_total != 0xffff && n_here != 0xffff && cd_size != 0xffffffffu &&
               cd_offset != 0xffffffffu,
           where, ": a zip64 archive, which is not supported (numpy writes zip64 only beyond 4 GiB)");
  DD_CHECK(disk == 0 && cd_disk == 0 && n_here == n_total, where,
           ": a multi-disk (split) zip archive, which is not supported");
  DD_CHECK(static_cast<uint64_t>(cd_offset) + cd_size <= end, where, ": the central directory (", cd_size,
           " bytes at offset ", cd_offset, ") runs past its end record at ", end, " (truncated or corrupt)");

  std::vector<CentralEntry> entries;
  std::set<std::string> names;
  const uint64_t cd_end = static_cast<uint64_t>(cd_offset) + cd_size;
  uint64_t p = cd_offset;
  for (uint32_t i = 0; i < n_total; ++i) {
    const std::string at = str_cat(where, ": central directory entry ", i);
    DD_CHECK(p + kCentralLen <= cd_end, at, " runs past the central directory (truncated or corrupt)");
    const uint8_t* c = data + p;
    DD_CHECK(u32_at(c) == kCentralSig, at, ": bad signature (corrupt archive)");
    CentralEntry ce;
    ce.flags = u16_at(c + 8);
    ce.method = u16_at(c + 10);
    ce.crc = u32_at(c + 16);
    ce.comp = u32_at(c + 20);
    ce.uncomp = u32_at(c + 24);
    const uint16_t name_len = u16_at(c + 28), extra_len = u16_at(c + 30), comment_len = u16_at(c + 32);
    const uint16_t start_disk = u16_at(c + 34);
    ce.local_offset = u32_at(c + 42);
    const uint64_t next = p + kCentralLen + name_len + extra_len + comment_len;
    DD_CHECK(next <= cd_end, at, ": its name, extra field and comment run past the central directory");
    ce.name.assign(reinterpret_cast<const char*>(c + kCentralLen), name_len);
    const std::string what = where + ": member '" + printable(ce.name) + "'";
    DD_CHECK(names.insert(ce.name).second, what, " appears twice");
    DD_CHECK(ce.comp != 0xffffffffu && ce.uncomp != 0xffffffffu && ce.local_offset != 0xffffffffu, what,
             ": zip64 sizes or offset, which are not supported");
    DD_CHECK(start_disk == 0, what, ": on another disk of a split archive (not supported)");
    DD_CHECK(!(ce.flags & 0x41), what, ": encrypted (not supported)");
    DD_CHECK(ce.method == 0 || ce.method == 8, what, ": compression method ", ce.method,
             " is not supported (stored and deflate are)");
    if (ce.method == 0) {
      DD_CHECK(ce.comp == ce.uncomp, what, ": stored, but its sizes differ (", ce.comp, " and ", ce.uncomp, ")");
    } else {
      DD_CHECK(ce.uncomp <= kMaxDeflateRatio * ce.comp + 64, what, ": declares ", ce.uncomp,
               " bytes from a deflate stream of ", ce.comp, ", more than deflate can produce (corrupt)");
    }
    entries.push_back(std::move(ce));
    p = next;
  }
  DD_CHECK(p == cd_end, where, ": the central directory holds ", cd_end - p, " bytes beyond its ", n_total,
           " entries (corrupt)");

  // Local headers: each before the central directory, naming the same member, its data inside the
  // file; no two members' records overlap (so no byte is inflated twice: no overlap bombs).
  for (CentralEntry& ce : entries) {
    const std::string what = where + ": member '" + printable(ce.name) + "'";
    const uint64_t off = ce.local_offset;
    DD_CHECK(off + kLocalLen <= cd_offset, what, ": its local header at offset ", off,
             " lies past the data area (truncated or corrupt)");
    const uint8_t* l = data + off;
    DD_CHECK(u32_at(l) == kLocalSig, what, ": bad local header signature at offset ", off, " (corrupt archive)");
    const uint16_t flags = u16_at(l + 6), method = u16_at(l + 8);
    const uint32_t crc = u32_at(l + 14), comp = u32_at(l + 18), uncomp = u32_at(l + 22);
    const uint16_t name_len = u16_at(l + 26), extra_len = u16_at(l + 28);
    DD_CHECK(method == ce.method && !(flags & 0x41), what, ": local header disagrees with the central directory ",
             "(method ", method, " vs ", ce.method, ")");
    // Without a data descriptor (flag bit 3) the local header repeats the CRC and sizes; numpy's
    // zipfile writes 0xffffffff there with a zip64 extra field even for small members.
    if (!(flags & 0x08)) {
      DD_CHECK(crc == ce.crc && (comp == ce.comp || comp == 0xffffffffu) && (uncomp == ce.uncomp || uncomp == 0xffffffffu),
               what, ": local header disagrees with the central directory (CRC or sizes)");
    }
    ce.data_begin = off + kLocalLen + name_len + extra_len;
    DD_CHECK(ce.data_begin <= cd_offset, what, ": its local name and extra field run past the data area");
    DD_CHECK(name_len == ce.name.size() && std::memcmp(l + kLocalLen, ce.name.data(), name_len) == 0, what,
             ": local header names another member (corrupt archive)");
    ce.data_end = ce.data_begin + ce.comp;
    DD_CHECK(ce.data_end <= cd_offset, what, ": its ", ce.comp, " bytes at offset ", ce.data_begin,
             " run past the data area (truncated)");
  }
  std::vector<const CentralEntry*> by_offset;
  for (const CentralEntry& ce : entries) by_offset.push_back(&ce);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const CentralEntry* a, const CentralEntry* b) { return a->local_offset < b->local_offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i)
    DD_CHECK(by_offset[i - 1]->data_end <= by_offset[i]->local_offset, where, ": members '",
             printable(by_offset[i - 1]->name), "' and '", printable(by_offset[i]->name), "' overlap (corrupt archive)");

  std::vector<ZipMember> out;
  for (const CentralEntry& ce : entries) {
    const std::string what = where + ": member '" + printable(ce.name) + "'";
    ZipMember m;
    m.name = ce.name;
    if (ce.method == 0) {
      m.data.assign(data + ce.data_begin, data + ce.data_end);
    } else {
      m.data = inflate_member(data + ce.data_begin, ce.comp, ce.uncomp, what);
    }
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, m.data.data(), static_cast<uInt>(m.data.size())));
    if (crc != ce.crc) {
      char hex[32];
      std::snprintf(hex, sizeof hex, "%08x, recorded %08x", crc, ce.crc);
      DD_FAIL(what, ": corrupted: its CRC-32 is ", hex);
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<uint8_t> encode_zip(const std::vector<ZipMember>& members) {
  DD_CHECK(members.size() < 0xffff, "encode_zip: ", members.size(), " members need zip64 (not supported)");
  std::vector<uint8_t> out, central;
  std::set<std::string> names;
  for (const ZipMember& m : members) {
    DD_CHECK(!m.name.empty() && m.name.size() <= 0xffff, "encode_zip: invalid member name '", printable(m.name), "'");
    DD_CHECK(names.insert(m.name).second, "encode_zip: member '", printable(m.name), "' appears twice");
    DD_CHECK(m.data.size() < 0xffffffffu && out.size() < 0xffffffffu, "encode_zip: member '", printable(m.name),
             "' is too large for a zip without zip64 (4 GiB)");
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, m.data.data(), static_cast<uInt>(m.data.size())));
    const uint32_t size = static_cast<uint32_t>(m.data.size()), offset = static_cast<uint32_t>(out.size());
    const uint32_t name_len = static_cast<uint32_t>(m.name.size());
    // Local header: version 2.0 needed, no flags, stored, 1980-01-01 00:00:00.
    put_u32(out, kLocalSig);
    put_u16(out, 20);
    put_u16(out, 0);
    put_u16(out, 0);
    put_u16(out, 0);
    put_u16(out, 0x21);
    put_u32(out, crc);
    put_u32(out, size);
    put_u32(out, size);
    put_u16(out, name_len);
    put_u16(out, 0);
    out.insert(out.end(), m.name.begin(), m.name.end());
    out.insert(out.end(), m.data.begin(), m.data.end());
    // Central entry: made by Unix (3), version 2.0; mode rw------- as Python's zipfile writes.
    put_u32(central, kCentralSig);
    put_u16(central, (3 << 8) | 20);
    put_u16(central, 20);
    put_u16(central, 0);
    put_u16(central, 0);
    put_u16(central, 0);
    put_u16(central, 0x21);
    put_u32(central, crc);
    put_u32(central, size);
    put_u32(central, size);
    put_u16(central, name_len);
    put_u16(central, 0);
    put_u16(central, 0);
    put_u16(central, 0);
    put_u16(central, 0);
    put_u32(central, 0600u << 16);
    put_u32(central, offset);
    central.insert(central.end(), m.name.begin(), m.name.end());
  }
  DD_CHECK(out.size() + central.size() < 0xffffffffu, "encode_zip: the archive is too large for a zip without zip64");
  const uint32_t cd_offset = static_cast<uint32_t>(out.size()), cd_size = static_cast<uint32_t>(central.size());
  out.insert(out.end(), central.begin(), central.end());
  put_u32(out, kEndSig);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, static_cast<uint32_t>(members.size()));
  put_u16(out, static_cast<uint32_t>(members.size()));
  put_u32(out, cd_size);
  put_u32(out, cd_offset);
  put_u16(out, 0);
  return out;
}

// ---- .npz ---------------------------------------------------------------------------------------

std::map<std::string, NpyArray> parse_npz(const uint8_t* data, std::size_t size, const std::string& where) {
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
