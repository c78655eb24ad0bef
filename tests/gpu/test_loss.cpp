// GPU vs CPU for the mean-reduced losses, with exact zeros and |d| = 1 in the
// differences (the kinks of L1 and Huber).
#include <catch2/catch.hpp>

#include "kernels/loss.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: loss forward and backward match the cpu", "[gpu][loss]") {
  DD_TEST_RANDOM(rng);
  // The last shape has more elements than 512 blocks x 256 threads: the grid-stride path.
  for (Shape s : {Shape{1}, Shape{7}, Shape{3, 5, 4, 2}, Shape{2, 31, 33, 3}, Shape{4, 129, 130, 3}}) {
    const int64_t n = shape_numel(s);
    std::vector<double> p = rng.normal_f32(n, 1.5), t = rng.normal_f32(n);
    for (int64_t i = 0; i < n; i += 5) p[i] = t[i];                    // d == 0
    for (int64_t i = 1; i < n; i += 7) p[i] = t[i] + (i % 2 ? 1 : -1);  // |d| == 1 (when exact in float)
    const Tensor pc = from_double(s, p), tc = from_double(s, t);
    const Tensor pg = pc.to(Device::CUDA), tg = tc.to(Device::CUDA);
    for (kernels::LossType type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
      INFO(kernels::loss_type_name(type) << " shape " << shape_str(s));
      const Tensor lg = kernels::loss_forward(pg, tg, type);
      CHECK(lg.device() == Device::CUDA);
      CHECK(lg.shape() == Shape{});
      // Both sum in double (different order) and round once to float: at most 1 ulp apart.
      expect_close("forward", lg.to(Device::CPU), kernels::loss_forward(pc, tc, type), 1e-6);
      for (float dloss : {1.0f, 0.37f}) {
        // The same float expressions with the same host-rounded factors: bitwise (tolerance 0).
        expect_close("backward", kernels::loss_backward(pg, tg, type, dloss).to(Device::CPU),
                     kernels::loss_backward(pc, tc, type, dloss), 0.0);
      }
    }
  }
}
