#include "engine/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "engine/error.h"

namespace dd {

namespace {
std::atomic<bool> g_poison{false};
constexpr std::size_t kCpuAlign = 64;  // one cache line; AVX-512 loads want it
}  // namespace

void set_poison_new_tensors(bool on) { g_poison = on; }
bool poison_new_tensors() { return g_poison; }

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    DD_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
    n *= d;
  }
  return n;
}

Storage::Storage(std::size_t bytes, Device dev) : bytes_(bytes), dev_(dev) {
  if (bytes == 0) return;
  if (dev == Device::CPU) {
    std::size_t rounded = (bytes + kCpuAlign - 1) / kCpuAlign * kCpuAlign;
    ptr_ = std::aligned_alloc(kCpuAlign, rounded);
    if (!ptr_) throw std::bad_alloc();
  } else {
    ptr_ = cuda_mem::alloc(bytes);
  }
}

Storage::~Storage() {
  if (!ptr_) return;
  if (dev_ == Device::CPU)
    std::free(ptr_);
  else
    cuda_mem::free(ptr_);
}

Tensor Tensor::empty(const Shape& shape, Device dev) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  t.storage_ = std::make_shared<Storage>(static_cast<std::size_t>(t.numel_) * sizeof(float), dev);
  if (g_poison) {
    if (dev == Device::CPU)
      t.fill_(std::numeric_limits<float>::quiet_NaN());
    else
      cuda_mem::memset(t.data(), 0xFF, t.storage_->bytes());  // 0xFFFFFFFF is a NaN
  }
  return t;
}

Tensor Tensor::zeros(const Shape& shape, Device dev) {
  Tensor t = empty(shape, dev);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device dev) {
  Tensor t = empty(shape, dev);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device dev) {
  DD_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "Tensor::from_vector: shape ",
           shape_str(shape), " needs ", shape_numel(shape), " values, got ", values.size());
  Tensor t = empty(shape, dev);
  if (dev == Device::CPU)
    std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  else
    cuda_mem::copy_h2d(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  DD_CHECK(j >= 0 && j < n, "Tensor::dim(", i, ") out of range for shape ", shape_str(shape_));
  return shape_[j];
}

Device Tensor::device() const {
  DD_CHECK(defined(), "device() of an undefined tensor");
  return storage_->device();
}

Tensor Tensor::to(Device dev) const {
  DD_CHECK(defined(), "to(", device_name(dev), ") of an undefined tensor");
  Tensor out = empty(shape_, dev);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::clone() const { return to(device()); }

Tensor Tensor::reshape(const Shape& shape) const {
  DD_CHECK(shape_numel(shape) == numel_, "reshape: cannot view ", shape_str(shape_), " as ",
           shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

std::vector<float> Tensor::to_vector() const {
  DD_CHECK(defined(), "to_vector of an undefined tensor");
  std::vector<float> v(static_cast<std::size_t>(numel_));
  if (device() == Device::CPU)
    std::memcpy(v.data(), data(), v.size() * sizeof(float));
  else
    cuda_mem::copy_d2h(v.data(), data(), v.size() * sizeof(float));
  return v;
}

float Tensor::item() const {
  DD_CHECK(numel_ == 1, "item() needs one element, tensor has shape ", shape_str(shape_));
  return to_vector()[0];
}

void Tensor::fill_(float value) {
  DD_CHECK(defined(), "fill_ of an undefined tensor");
  if (device() == Device::CPU) {
    float* p = data();
    for (int64_t i = 0; i < numel_; ++i) p[i] = value;
  } else if (value == 0.0f) {
    cuda_mem::memset(data(), 0, static_cast<std::size_t>(numel_) * sizeof(float));
  } else {
    cuda_mem::fill_f32(data(), value, static_cast<std::size_t>(numel_));
  }
}

void Tensor::zero_() { fill_(0.0f); }

void Tensor::copy_from(const Tensor& src) {
  DD_CHECK(defined() && src.defined(), "copy_from: undefined tensor");
  DD_CHECK(src.numel() == numel_, "copy_from: ", describe(src), " into ", describe(*this));
  std::size_t bytes = static_cast<std::size_t>(numel_) * sizeof(float);
  Device from = src.device(), to_dev = device();
  if (from == Device::CPU && to_dev == Device::CPU)
    std::memcpy(data(), src.data(), bytes);
  else if (from == Device::CPU)
    cuda_mem::copy_h2d(data(), src.data(), bytes);
  else if (to_dev == Device::CPU)
    cuda_mem::copy_d2h(data(), src.data(), bytes);
  else
    cuda_mem::copy_d2d(data(), src.data(), bytes);
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "<undefined>";
  return shape_str(t.shape()) + " " + device_name(t.device());
}

}  // namespace dd
