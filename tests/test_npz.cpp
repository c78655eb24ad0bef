// numpy's .npy and .npz files (engine/npz.h): header versions, dtypes and shapes, numpy's own layout,
// zip members (stored and deflated), and what is refused, by name.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/npz.h"
#include "engine/tensor.h"
#include "tests/support/expect_error.h"

using namespace dd;
using namespace dd::test;

// ---- engine/npz.h ---------------------------------------------------------------------------------

TEST_CASE("npz: .npy headers of versions 1 to 3, shapes and dtypes parse, and ours have numpy's layout", "[fid][npz]") {
  auto npy = [](int major, const std::string& header, const std::string& data) {
    std::string s = "\x93NUMPY";
    s += static_cast<char>(major);
    s += '\0';
    const std::size_t n = header.size();
    if (major == 1) {
      s += static_cast<char>(n & 0xff);
      s += static_cast<char>(n >> 8);
    } else {
      for (int i = 0; i < 4; ++i) s += static_cast<char>((n >> (8 * i)) & 0xff);
    }
    return s + header + data;
  };
  auto parse = [](const std::string& s) {
    return npz::parse_npy(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "test.npy");
  };
  std::string two_doubles(16, '\0');
  const double vals[2] = {1.25, -3.0};
  std::memcpy(two_doubles.data(), vals, 16);
  for (int major : {1, 2, 3}) {
    const npz::NpyArray a = parse(npy(major, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }   \n", two_doubles));
    CHECK(a.descr == "<f8");
    CHECK(a.shape == std::vector<int64_t>{2});
    CHECK(a.to_f64() == std::vector<double>{1.25, -3.0});
  }
  // Double quotes, another key order, Python 2's long literals, no trailing comma, a 0-d and an empty array.
  CHECK(parse(npy(1, "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f8\"}\n", two_doubles)).shape ==
        std::vector<int64_t>{1, 2});
  CHECK(parse(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': ()}", two_doubles.substr(0, 8))).numel() == 1);
  CHECK(parse(npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5)}", "")).numel() == 0);
  // Other dtypes convert to float64.
  const int32_t ints[3] = {-7, 0, 1 << 30};
  CHECK(parse(npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,)}", std::string(reinterpret_cast<const char*>(ints), 12)))
            .to_f64() == std::vector<double>{-7, 0, 1 << 30});
  CHECK(parse(npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,)}", std::string("\x01\x00", 2))).to_f64() ==
        std::vector<double>{1, 0});
  CHECK(parse(npy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1,)}", std::string("\x00\x3c", 2))).to_f64() ==
        std::vector<double>{1.0});

  // What numpy refuses or we do not support, by name.
  const std::string h = "'fortran_order': False, 'shape': (2,)}";
  expect_error([&] { parse(npy(1, "{'descr': '>f8', " + h, two_doubles)); }, {"test.npy", "dtype '>f8' is not supported"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2,)}", two_doubles)); },
               {"Fortran order"});
  expect_error([&] { parse(npy(1, "{'descr': [('a', '<f8')], " + h, two_doubles)); }, {"structured dtype"});
  expect_error([&] { parse(npy(1, "{'descr': '|O', " + h, two_doubles)); }, {"dtype '|O'"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', " + h, two_doubles.substr(0, 15))); },
               {"needs 16 data bytes but the file holds 15 (truncated)"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', " + h, two_doubles + "x")); }, {"holds 17"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'shape': (2,)}", two_doubles)); }, {"no 'fortran_order'"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'descr': '<f8', " + h, two_doubles)); }, {"repeats the key"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'extra': 1, " + h, two_doubles)); }, {"unexpected key 'extra'"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x", two_doubles)); },
               {"text after the closing"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (-2,)}", two_doubles)); },
               {"non-negative integer"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999)}", "")); },
               {"overflows"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}", "")); },
               {"beyond int64"});
  expect_error([&] { parse(npy(4, "{}", "")); }, {"version 4.0 is not supported"});
  expect_error([&] { parse(npy(1, "{'descr': '<f8'", "")); }, {"expects ',' or '}'"});
  std::string long_len = npy(1, "{}", "");
  long_len[8] = '\x7f';
  expect_error([&] { parse(long_len); }, {"claims 127 bytes but only 2 follow"});
  expect_error([&] { parse("\x93NUMP"); }, {"too short"});
  expect_error([&] { parse("PK\x03\x04......"); }, {"not an .npy file"});

  // Ours: numpy's header layout, the data 64-byte aligned, and it parses back.
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{}, {3}, {2, 3}, {1, 1, 1, 1}}) {
    std::vector<double> v(static_cast<std::size_t>(std::max<int64_t>(1, shape.empty() ? 1 : shape_numel(shape))));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5 * static_cast<double>(i);
    const std::vector<uint8_t> enc = npz::encode_npy(npz::npy_from_f64(v, shape));
    const std::size_t data_at = enc.size() - v.size() * 8;
    CHECK(data_at % 64 == 0);
    CHECK(enc[data_at - 1] == '\n');
    const npz::NpyArray back = npz::parse_npy(enc.data(), enc.size(), "ours");
    CHECK(back.shape == shape);
    CHECK(back.to_f64() == v);
  }
  // numpy's bytes exactly (fid_ref.py compares whole files): magic, version 1.0, header length 118,
  // the dict, spaces, '\n', data at 128.
  const std::vector<uint8_t> enc = npz::encode_npy(npz::npy_from_f64({0, 1, 2}, {3}));
  REQUIRE(enc.size() == 128 + 24);
  CHECK(std::string(enc.begin(), enc.begin() + 10) == std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  const std::string header(enc.begin() + 10, enc.begin() + 128);
  CHECK(header == dict + std::string(127 - 10 - dict.size(), ' ') + "\n");
}

TEST_CASE("npz: zip archives: deflated members, and what is not supported, by name", "[fid][npz]") {
  // A deflated member, built with zlib here, reads back; a stored one too.
  const std::vector<uint8_t> npy = npz::encode_npy(npz::npy_from_f64(std::vector<double>(50, 1.0), {50}));
  std::vector<uint8_t> stored = npz::encode_zip({{"mu.npy", npy}});
  const auto arrays = npz::parse_npz(stored.data(), stored.size(), "stored.npz");
  REQUIRE(arrays.count("mu"));
  CHECK(arrays.at("mu").to_f64() == std::vector<double>(50, 1.0));

  auto u16 = [](std::vector<uint8_t>& b, std::size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v);
    b[at + 1] = static_cast<uint8_t>(v >> 8);
  };
  auto u32 = [&](std::vector<uint8_t>& b, std::size_t at, uint32_t v) {
    u16(b, at, v & 0xffff);
    u16(b, at + 2, v >> 16);
  };
  const std::size_t end = stored.size() - 22;           // the end record
  const std::size_t central = end - (46 + 6);           // the one central entry ("mu.npy")
  auto parse = [](const std::vector<uint8_t>& b) { (void)npz::parse_npz(b.data(), b.size(), "bad.npz"); };
  {
    std::vector<uint8_t> b = stored;
    u16(b, end + 10, 0xffff);
    u16(b, end + 8, 0xffff);
    expect_error([&] { parse(b); }, {"bad.npz", "zip64"});
  }
  {
    std::vector<uint8_t> b = stored;
    u32(b, central + 24, 0xffffffffu);
    expect_error([&] { parse(b); }, {"bad.npz", "mu.npy", "zip64"});
  }
  {
    std::vector<uint8_t> b = stored;
    u16(b, central + 10, 12);  // bzip2
    expect_error([&] { parse(b); }, {"compression method 12 is not supported"});
  }
  {
    std::vector<uint8_t> b = stored;
    u16(b, central + 8, 1);
    expect_error([&] { parse(b); }, {"encrypted"});
  }
  {
    std::vector<uint8_t> b = stored;
    u16(b, end + 4, 1);
    expect_error([&] { parse(b); }, {"multi-disk"});
  }
  {
    std::vector<uint8_t> b = stored;
    u32(b, central + 42, 4);  // the local header offset points into the middle of one
    expect_error([&] { parse(b); }, {"bad local header signature"});
  }
  {
    const std::vector<uint8_t> two = npz::encode_zip({{"notes.txt", {'h', 'i'}}});
    expect_error([&] { parse(two); }, {"'notes.txt' is not an .npy file"});
  }
  {
    // A deflated member: the local header and central entry rewritten around zlib's raw deflate.
    std::vector<uint8_t> comp(compressBound(npy.size()) + 64);
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = const_cast<Bytef*>(npy.data());
    zs.avail_in = static_cast<uInt>(npy.size());
    zs.next_out = comp.data();
    zs.avail_out = static_cast<uInt>(comp.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    comp.resize(zs.total_out);
    deflateEnd(&zs);
    std::vector<uint8_t> z = npz::encode_zip({{"mu.npy", comp}});
    const std::size_t zend = z.size() - 22, zcentral = zend - (46 + 6);
    for (std::size_t at : {std::size_t{8}, zcentral + 10}) u16(z, at, 8);                 // method: deflate
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, npy.data(), static_cast<uInt>(npy.size())));
    for (std::size_t at : {std::size_t{14}, zcentral + 16}) u32(z, at, crc);               // CRC of the inflated bytes
    for (std::size_t at : {std::size_t{22}, zcentral + 24}) u32(z, at, static_cast<uint32_t>(npy.size()));
    const auto back = npz::parse_npz(z.data(), z.size(), "deflated.npz");
    CHECK(back.at("mu").to_f64() == std::vector<double>(50, 1.0));
    // Claiming more than it inflates to, or more than deflate could produce; a corrupt stream.
    std::vector<uint8_t> more = z;
    for (std::size_t at : {std::size_t{22}, zcentral + 24}) u32(more, at, static_cast<uint32_t>(npy.size() + 1));
    expect_error([&] { parse(more); }, {"inflates to", "declares"});
    std::vector<uint8_t> bomb = z;
    for (std::size_t at : {std::size_t{22}, zcentral + 24}) u32(bomb, at, 0x7fffffffu);
    expect_error([&] { parse(bomb); }, {"more than deflate can produce"});
    std::vector<uint8_t> corrupt = z;
    corrupt[30 + 6 + 2] ^= 0xff;
    expect_error([&] { parse(corrupt); }, {"bad.npz", "mu.npy"});
  }
}
