#pragma once
// A dense, contiguous tensor on the CPU or a CUDA device, of one of the dtypes in
// engine/dtype.h (float32 unless asked otherwise).
//
// Copies are shallow (they share storage, like torch.Tensor); clone() makes a
// deep copy. Activations are NHWC throughout the engine (see README.md).
//
// Views: a tensor is a window of numel() contiguous elements starting
// storage_offset() elements into its Storage, so several tensors can live in one
// buffer (view_of). A view shares the buffer and keeps it alive; every operation
// below reads and writes only the view's own elements. There are no strides: a
// view is always contiguous.
//
// Kernels compute in float32 and take `float* data()`, which throws for any other
// dtype, so a bf16 or int tensor handed to an op fails clearly instead of being
// misread. Other dtypes are storage formats: cast with to(DType::F32) first.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"

namespace dd {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Storage {
 public:
  Storage(std::size_t bytes, Device dev);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return dev_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Device dev_;
};

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised memory (NaN-poisoned, or all ones bits for integer dtypes, when
  // debug poisoning is on).
  static Tensor empty(const Shape& shape, Device dev = Device::CPU, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, Device dev = Device::CPU, DType dtype = DType::F32);
  // value cast to dtype by the rules of engine/dtype.h.
  static Tensor full(const Shape& shape, float value, Device dev = Device::CPU, DType dtype = DType::F32);
  // The float values cast to dtype.
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values, Device dev = Device::CPU,
                            DType dtype = DType::F32);
  // numel(shape) elements of dtype, copied from host memory at `bytes`.
  static Tensor from_raw(const Shape& shape, DType dtype, const void* bytes, Device dev = Device::CPU);
  static Tensor scalar(float value, Device dev = Device::CPU) { return full({}, value, dev); }
  // A view of base's storage: `shape` elements starting offset_elems elements after
  // base's first element (so views of views compose), with base's dtype and device.
  // The window must lie inside base: 0 <= offset_elems and offset_elems +
  // numel(shape) <= base.numel(); otherwise it throws.
  static Tensor view_of(const Tensor& base, int64_t offset_elems, const Shape& shape);

  bool defined() const { return static_cast<bool>(storage_); }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Negative indices count from the back, as in PyTorch.
  int64_t dim(int i) const;
  int64_t numel() const { return numel_; }
  Device device() const;
  DType dtype() const { return dtype_; }
  std::size_t element_size() const { return dtype_size(dtype_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * element_size(); }
  // Elements of this dtype between the storage's start and this tensor's first element.
  int64_t storage_offset() const { return offset_; }
  bool is_cpu() const { return device() == Device::CPU; }

  // The float32 kernels' accessor: throws unless dtype() is F32. Null for an
  // undefined tensor.
  float* data() { return data<float>(); }
  const float* data() const { return data<float>(); }
  // T must be the dtype's storage type (float, bf16, f16, int32_t, int64_t);
  // throws naming both dtypes otherwise.
  template <typename T>
  T* data() {
    check_dtype(dtype_of<T>::value);
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* data() const {
    check_dtype(dtype_of<T>::value);
    return static_cast<const T*>(raw_data());
  }
  // The first element's address, whatever the dtype.
  void* raw_data() { return storage_ ? static_cast<char*>(storage_->data()) + offset_ * element_size() : nullptr; }
  const void* raw_data() const { return const_cast<Tensor*>(this)->raw_data(); }

  // A copy on dev (always a new buffer, even on the same device).
  Tensor to(Device dev) const;
  // This tensor cast to dtype on the same device; *this itself (sharing storage)
  // when it already has that dtype, as in PyTorch.
  Tensor to(DType dtype) const;
  Tensor clone() const;
  // Same storage, new shape of the same number of elements.
  Tensor reshape(const Shape& shape) const;
  // The elements as float (cast from other dtypes, so int64 beyond 2^24 rounds).
  std::vector<float> to_vector() const;
  // The elements' raw bytes, on the host.
  std::vector<uint8_t> to_bytes() const;
  float item() const;

  // value cast to this tensor's dtype.
  void fill_(float value);
  void zero_();
  // Copies src (same numel, any device) into this tensor's elements, casting when
  // the dtypes differ.
  void copy_from(const Tensor& src);

  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }
  // True when no other tensor shares this storage (safe to modify in place). A view
  // shares its base's storage, so neither is unique while both live.
  bool storage_unique() const { return storage_.use_count() == 1; }

 private:
  void check_dtype(DType want) const {
    if (want != dtype_) fail_dtype(want);
  }
  [[noreturn]] void fail_dtype(DType want) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t numel_ = 0;
  int64_t offset_ = 0;  // in elements of dtype_
  DType dtype_ = DType::F32;
};

// "[2,3,4] cpu"; other dtypes than float32 are named: "[2,3] cpu bfloat16".
std::string describe(const Tensor& t);

// Testing aid: when on, every new tensor's memory is filled with NaN, so an
// element that no kernel wrote shows up as NaN instead of stale data.
void set_poison_new_tensors(bool on);
bool poison_new_tensors();

}  // namespace dd
