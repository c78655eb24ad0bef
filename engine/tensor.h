#pragma once
// A dense, contiguous float32 tensor on the CPU or a CUDA device.
//
// Copies are shallow (they share storage, like torch.Tensor); clone() makes a
// deep copy. Activations are NHWC throughout the engine (see README.md).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"

namespace dd {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

enum class DType { F32 };

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

  // Uninitialised memory (NaN-poisoned when debug poisoning is on).
  static Tensor empty(const Shape& shape, Device dev = Device::CPU);
  static Tensor zeros(const Shape& shape, Device dev = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device dev = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device dev = Device::CPU);
  static Tensor scalar(float value, Device dev = Device::CPU) { return full({}, value, dev); }

  bool defined() const { return static_cast<bool>(storage_); }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Negative indices count from the back, as in PyTorch.
  int64_t dim(int i) const;
  int64_t numel() const { return numel_; }
  Device device() const;
  DType dtype() const { return DType::F32; }
  bool is_cpu() const { return device() == Device::CPU; }

  float* data() { return static_cast<float*>(storage_ ? storage_->data() : nullptr); }
  const float* data() const { return static_cast<const float*>(storage_ ? storage_->data() : nullptr); }

  Tensor to(Device dev) const;
  Tensor clone() const;
  // Same storage, new shape of the same number of elements.
  Tensor reshape(const Shape& shape) const;
  std::vector<float> to_vector() const;
  float item() const;

  void fill_(float value);
  void zero_();
  // Copies src (same numel, any device) into this tensor's storage.
  void copy_from(const Tensor& src);

  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }
  // True when no other tensor shares this storage (safe to modify in place).
  bool storage_unique() const { return storage_.use_count() == 1; }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t numel_ = 0;
};

std::string describe(const Tensor& t);  // "[2,3,4] cpu"

// Testing aid: when on, every new tensor's memory is filled with NaN, so an
// element that no kernel wrote shows up as NaN instead of stale data.
void set_poison_new_tensors(bool on);
bool poison_new_tensors();

}  // namespace dd
