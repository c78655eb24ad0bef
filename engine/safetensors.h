#pragma once
// Reading and writing safetensors files, the weight format PyTorch users exchange.
//
// Layout: an 8-byte little-endian u64 N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the byte buffer; offsets are relative to the buffer start.
//
// Loading is strict: any inconsistency (truncation, bad JSON, a byte range that does not
// match shape x dtype size, gaps or overlaps between tensors) throws dd::Error naming the
// file, because a silently misread weight file produces a model that is subtly wrong.
// Files we write are accepted by the reference (Rust/Python) safetensors library.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dd {

// One tensor as stored: raw little-endian bytes of the dtype named by the file
// ("F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL", ...).
struct SafeTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numel() const { return shape_numel(shape); }
  // CPU float32 tensor with this shape. F32 as is; F64, F16, BF16 and the integer dtypes are
  // converted (F64 and large integers are rounded to the nearest float). Other dtypes throw.
  Tensor to_f32() const;
  // Integer dtypes as int64; float dtypes only when every value is an integer in int64 range.
  std::vector<int64_t> to_i64() const;
  // A tensor of the stored dtype, bit for bit, on dev: F32, BF16, F16, I32 and I64 (the
  // engine's dtypes). Other dtypes throw, naming to_f32() which converts them.
  Tensor to_tensor(Device dev = Device::CPU) const;
  // The values as float64 (the engine's Tensor has no F64; statistics such as FID's mean and
  // covariance are kept this way): F64 as is; F32, F16, BF16 exactly; integer dtypes and BOOL
  // converted (64-bit integers beyond 2^53 rounded). Other dtypes throw.
  std::vector<double> to_f64() const;
};

struct SafeTensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafeTensor> tensors;
  // The path this was loaded from, so lookups can name the file in their errors; empty for a
  // file built in memory.
  std::string source;

  // Stores t (any device) as F32, casting other dtypes. Replaces an existing tensor of the same name.
  void put_f32(const std::string& name, const Tensor& t);
  // Stores t (any device) in its own dtype, bit for bit. Replaces an existing tensor of the same name.
  void put(const std::string& name, const Tensor& t);
  // Stores values as I64 with the given shape (its element count must match).
  void put_i64(const std::string& name, const std::vector<int64_t>& values, const std::vector<int64_t>& shape);
  // Stores values as F64 with the given shape (its element count must match), bit for bit.
  void put_f64(const std::string& name, const std::vector<double>& values, const std::vector<int64_t>& shape);
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  // Throws naming the file and listing the names it holds when name is absent.
  const SafeTensor& at(const std::string& name) const;
};

// Bytes per element of a safetensors dtype name; 0 when the name is not a dtype we know.
int64_t safetensors_dtype_size(const std::string& dtype);

SafeTensorsFile load_safetensors(const std::string& path);
// Writes durably (engine/durable_file.h: temporary file, fsync, rename, directory fsync), so an
// interrupted save or a full disk never leaves a truncated file under the real name. The metadata
// gains the data's CRC-32C ("dd_data_crc32c"), which load_safetensors verifies: a file whose data
// no longer matches it is reported as corrupted, naming the file. Files without it load as before.
void save_safetensors(const std::string& path, const SafeTensorsFile& f);

}  // namespace dd
