#include "engine/context.h"
#include "engine/cuda_check.h"
#include "engine/cuda_graph.h"
#include "engine/cuda_stream.h"
#include "engine/device.h"

namespace dd {

bool cuda_graphs_supported() { return true; }

struct CudaGraph::Impl {
  cudaGraphExec_t exec = nullptr;
  cudaStream_t stream = nullptr;  // the capturing context's: replays go there
  long long nodes = 0;
  void reset() {
    // A replay may still be running: let it finish before its executable and (after the destructor)
    // its pool's blocks are given up.
    if (exec) cudaStreamSynchronize(stream);
    if (exec) cudaGraphExecDestroy(exec);
    exec = nullptr;
    nodes = 0;
  }
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()), pool_(cuda_mem::create_pool()) {}

CudaGraph::~CudaGraph() {
  impl_->reset();
  cuda_mem::release_pool(pool_);
}

void CudaGraph::capture(const std::function<void()>& body) {
  Context& ctx = current_context();
  DD_CHECK(!ctx.capturing(), "CudaGraph::capture: a capture is already under way on this context");
  impl_->reset();
  cudaStream_t stream = cuda_stream();
  impl_->stream = stream;
  // Thread-local mode: another thread's unsafe calls (a loader's cudaMallocHost) cannot invalidate
  // this capture; this thread's own are caught by the engine before they reach the driver.
  DD_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  {
    cuda_mem::PoolScope pool(pool_);
    ctx.set_capturing(true);
    try {
      body();
    } catch (...) {
      ctx.set_capturing(false);
      cudaStreamEndCapture(stream, &graph);  // abandon: the partial graph is discarded
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    ctx.set_capturing(false);
  }
  DD_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  std::size_t n = 0;
  const cudaError_t err = cudaGraphGetNodes(graph, nullptr, &n);
  if (err == cudaSuccess) impl_->nodes = static_cast<long long>(n);
  const cudaError_t inst = cudaGraphInstantiate(&impl_->exec, graph, 0);
  cudaGraphDestroy(graph);
  DD_CUDA_CHECK(inst);
}

void CudaGraph::replay() {
  DD_CHECK(impl_->exec, "CudaGraph::replay: nothing captured");
  DD_CHECK(!current_context().capturing(), "CudaGraph::replay inside a capture");
  DD_CUDA_CHECK(cudaGraphLaunch(impl_->exec, impl_->stream));
}

bool CudaGraph::captured() const { return impl_->exec != nullptr; }
long long CudaGraph::nodes() const { return impl_->nodes; }

}  // namespace dd
