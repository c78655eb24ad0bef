#include "kernels/dispatch.h"

namespace dd::kernels {

void no_cuda_backend(const char* op) {
  DD_FAIL(op, ": tensor is on cuda but this build has no CUDA backend");
}

void no_cuda_kernel(const char* op) {
  DD_FAIL(op, ": no CUDA kernel for this op yet; run it on the cpu device");
}

Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  return common_device(op, std::vector<const Tensor*>(ts));
}

Device common_device(const char* op, const std::vector<const Tensor*>& ts) {
  // Called by every op on every launch: the operands' descriptions are built only for the error.
  bool found = false;
  bool mixed = false;
  Device dev = Device::CPU;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!found) {
      dev = t->device();
      found = true;
    } else if (t->device() != dev) {
      mixed = true;
    }
  }
  DD_CHECK(found, op, ": no defined input tensor");
  if (mixed) {
    std::string all;
    for (const Tensor* t : ts) {
      if (!t || !t->defined()) continue;
      if (!all.empty()) all += ", ";
      all += describe(*t);
    }
    DD_FAIL(op, ": inputs are on different devices: ", all);
  }
  return dev;
}

}  // namespace dd::kernels
