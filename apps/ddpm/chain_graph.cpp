#include "apps/ddpm/chain_graph.h"

#include "engine/device.h"
#include "engine/error.h"

namespace dd::ddpm {

Tensor ChainGraphs::run(int64_t n, Generator& gen, const Chain& chain) {
  if (!enabled_ || !warm_) {
    warm_ = true;
    return chain(gen, true);
  }
  DD_CHECK(dev_ == Device::CUDA, "sampling: CUDA graphs need a CUDA device, got ", device_name(dev_));
  Entry& e = by_n_[n];
  if (!e.base.defined()) e.base = Tensor::zeros({1}, dev_, DType::I64);
  // Where this batch's draws start, written where the graph reads it.
  const uint64_t start = gen.offset();
  cuda_mem::write_small(e.base.raw_data(), &start, sizeof start);
  if (!e.graph) {
    e.graph = std::make_unique<CudaGraph>();
    gen.anchor(static_cast<const uint64_t*>(e.base.raw_data()));
    try {
      e.graph->capture([&] { e.out = chain(gen, false); });
    } catch (...) {
      gen.unanchor();
      e.graph.reset();
      throw;
    }
    gen.unanchor();
    e.blocks = gen.offset() - start;  // the capture moved the host counter on by one chain
  } else {
    gen.skip(e.blocks);
  }
  e.graph->replay();
  ++replays_;
  return e.out;
}

}  // namespace dd::ddpm
