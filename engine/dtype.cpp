#include "engine/dtype.h"

#include "engine/error.h"

namespace dd {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
  }
  DD_FAIL("dtype_name: invalid DType value ", static_cast<int>(t));
}

const char* dtype_safetensors_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  DD_FAIL("dtype_safetensors_name: invalid DType value ", static_cast<int>(t));
}

bool dtype_from_safetensors(std::string_view name, DType& out) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64}) {
    if (name == dtype_safetensors_name(t)) {
      out = t;
      return true;
    }
  }
  return false;
}

namespace {
template <typename To, typename From>
void cast_loop(const void* src, void* dst, int64_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = dtype_conv::cast<To, From>(s[i]);
}

}  // namespace

void cast_host(const void* src, DType from, void* dst, DType to, int64_t n) {
  if (n <= 0) return;
  DD_CHECK(dtype_valid(from) && dtype_valid(to), "cast: invalid DType value ", static_cast<int>(from), " or ",
           static_cast<int>(to));
  visit_dtype(from, [&](auto f) {
    visit_dtype(to, [&](auto t) { cast_loop<decltype(t), decltype(f)>(src, dst, n); });
  });
}

}  // namespace dd

#ifndef DD_WITH_CUDA
#include "engine/cast.h"
namespace dd::cuda_cast {
void cast(const void*, DType, void*, DType, int64_t) {
  DD_FAIL("cuda cast: this build has no CUDA backend (configure with the CUDA toolkit present)");
}
void fill(void*, std::size_t, uint64_t, int64_t) {
  DD_FAIL("cuda fill: this build has no CUDA backend (configure with the CUDA toolkit present)");
}
}  // namespace dd::cuda_cast
#endif
