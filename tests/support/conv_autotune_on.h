#pragma once
// Conv autotuning on, from an empty table, for a test's scope; off and emptied again after it
// (kernels/conv_autotune.h keeps one table per process, which every other test expects off).
#include "kernels/conv_autotune.h"

namespace dd::test {

struct ConvAutotuneOn {
  ConvAutotuneOn() {
    kernels::clear_conv_autotune();
    kernels::set_conv_autotune(true);
  }
  ~ConvAutotuneOn() {
    kernels::set_conv_autotune(false);
    kernels::clear_conv_autotune();
  }
  ConvAutotuneOn(const ConvAutotuneOn&) = delete;
  ConvAutotuneOn& operator=(const ConvAutotuneOn&) = delete;
};

}  // namespace dd::test
