#include "apps/ddpm/loss_ring.h"

#include <cstring>

#include "engine/device.h"
#include "engine/error.h"

namespace dd::ddpm {

LossRing::LossRing(Device dev, int64_t capacity) : buf_(Tensor::empty({capacity}, dev)), capacity_(capacity) {
  DD_CHECK(capacity > 0, "LossRing: capacity must be positive, got ", capacity);
}

void LossRing::push(const Tensor& loss) {
  DD_CHECK(!full(), "LossRing: full (", capacity_, " losses); drain it first");
  DD_CHECK(loss.numel() == 1 && loss.device() == buf_.device(), "LossRing: expected a one-element loss on ",
           device_name(buf_.device()), ", got ", describe(loss));
  float* dst = buf_.data() + count_;
  if (buf_.device() == Device::CUDA)
    cuda_mem::copy_d2d(dst, loss.data(), sizeof(float));
  else
    std::memcpy(dst, loss.data(), sizeof(float));
  ++count_;
}

std::vector<float> LossRing::drain() {
  std::vector<float> out(static_cast<std::size_t>(count_));
  if (count_ == 0) return out;
  if (buf_.device() == Device::CUDA)
    cuda_mem::copy_d2h(out.data(), buf_.data(), out.size() * sizeof(float));
  else
    std::memcpy(out.data(), buf_.data(), out.size() * sizeof(float));
  count_ = 0;
  return out;
}

}  // namespace dd::ddpm
