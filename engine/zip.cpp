#include "engine/npz.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>

#include "engine/error.h"
#include "engine/le_bytes.h"

// The zip container of .npz files (declared in engine/npz.h): read stored and deflated members,
// write stored ones.
namespace dd::npz {
namespace {

using namespace dd::le_bytes;

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::size_t kLocalLen = 30, kCentralLen = 46, kEndLen = 22, kZip64LocatorLen = 20;
// Deflate cannot expand a stream by more than about 1032:1; a member that claims more is corrupt,
// and refusing it before allocating keeps a tiny file from asking for gigabytes.
constexpr uint64_t kMaxDeflateRatio = 1032;

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

}  // namespace

std::vector<ZipMember> parse_zip(const uint8_t* data, std::size_t size, const std::string& where) {
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

}  // namespace dd::npz
