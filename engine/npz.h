#pragma once
// NumPy's array files: .npy (one array) and .npz (a zip archive of .npy files, as np.savez and
// np.savez_compressed write them). pytorch-fid exchanges its FID statistics this way.
//
// .npy: the magic "\x93NUMPY", a version byte pair (1.0: u16 header length; 2.0 and 3.0: u32), a
// Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (64, 64), } padded with
// spaces and ending in '\n', then the raw data.
// .npz: a zip file whose members are NAME.npy, stored (np.savez) or deflated (np.savez_compressed).
//
// Reading is strict, as every reader of an untrusted file here (tests/fuzz/fuzz_npz.cpp fuzzes it):
// every length and offset is checked against the bytes there are, CRC-32s are verified, and what is
// not supported (zip64, encryption, compression other than deflate, multi-disk archives, big-endian,
// structured or object dtypes, Fortran order) is rejected by name. Errors name the file and the member.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dd::npz {

// One array as stored: numpy's dtype string ('<f8', '<f4', '<i8', '|u1', ...), its shape (C order)
// and the raw little-endian bytes.
struct NpyArray {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numel() const;
  // The values as float64: '<f8' as is, '<f4' and '<f2' exactly, integers and booleans converted
  // (integers beyond 2^53 rounded). Other dtypes throw, naming `where`.
  std::vector<double> to_f64(const std::string& where = "npy array") const;
};

// Bytes per element of a dtype string we read ('<f8', '<f4', '<f2', '<i8', '<i4', '<i2', '|i1',
// '<u8', '<u4', '<u2', '|u1', '|b1'; a one-byte type may be written with '<', '>', '=' or '|'), 0 for
// any other (big-endian, structured, object, strings ...).
int64_t npy_dtype_size(const std::string& descr);

// An array of float64 values ('<f8') with the given shape (its element count must match).
NpyArray npy_from_f64(const std::vector<double>& values, const std::vector<int64_t>& shape);

// Parses one .npy file held in memory; `where` (the file, the member) starts every error message.
NpyArray parse_npy(const uint8_t* data, std::size_t size, const std::string& where);
// The .npy bytes numpy writes for a: version 1.0 (2.0 when the header needs more than 65535 bytes),
// the header padded so that the data start at a multiple of 64 bytes.
std::vector<uint8_t> encode_npy(const NpyArray& a);

// One member of a zip archive, decompressed and CRC-checked.
struct ZipMember {
  std::string name;
  std::vector<uint8_t> data;
};
// Reads every member of a zip archive held in memory (stored or deflated; no zip64). `where` names
// the archive in errors.
std::vector<ZipMember> parse_zip(const uint8_t* data, std::size_t size, const std::string& where);
// A zip archive of stored (uncompressed) members, as Python's zipfile writes it for np.savez:
// version 2.0, no data descriptors, a fixed 1980-01-01 timestamp (so equal inputs give equal bytes).
std::vector<uint8_t> encode_zip(const std::vector<ZipMember>& members);

// The arrays of an .npz file, by key (the member name without ".npy"). Members whose names do not
// end in ".npy" are rejected, as are duplicate keys.
std::map<std::string, NpyArray> load_npz(const std::string& path);
// The same from bytes in memory (the fuzz harness; `where` names them).
std::map<std::string, NpyArray> parse_npz(const uint8_t* data, std::size_t size, const std::string& where);
// Writes what np.savez writes (stored members KEY.npy), durably (engine/durable_file.h).
void save_npz(const std::string& path, const std::map<std::string, NpyArray>& arrays);

}  // namespace dd::npz
