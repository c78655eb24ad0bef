#pragma once
// How the CUDA multi-tensor kernels (kernels/cuda/multi_tensor.cu) split a
// list of tensors into launches: plain C++, so a CPU test can check that every
// element of every tensor is covered exactly once.
#include <array>
#include <cstdint>
#include <vector>

namespace dd::kernels::cuda {

// A launch's work list travels as a kernel argument (under the classic 4 KB
// limit), not through a host-to-device copy: no staging sync, no scratch.
// Each block handles one chunk of one tensor.
constexpr int kMaxTensors = 24;
constexpr int kMaxBlocks = 320;
constexpr int64_t kChunk = 16384;  // elements per block

template <int P>
struct Table {
  float* ptr[P][kMaxTensors];
  int64_t n[kMaxTensors];
  int tensor_of_block[kMaxBlocks];
  int chunk_of_block[kMaxBlocks];
};
static_assert(sizeof(Table<4>) + 64 <= 4096, "kernel argument over 4 KB");

// A list of one tensor (a flat parameter/gradient arena) goes in a single launch whatever its
// size: a grid of at most kFlatMaxBlocks blocks (two of 512 threads per SM of a 132-SM H100) strides
// over it, instead of the tables' one block per chunk and 320 chunks per launch.
constexpr int kFlatMaxBlocks = 264;
inline int flat_blocks(int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  return static_cast<int>(chunks < kFlatMaxBlocks ? chunks : kFlatMaxBlocks);
}

// Walks every tensor's chunks, filling tables and calling launch(table,
// blocks, first_global_block) whenever one is full, and once at the end.
template <int P, class Launch>
void for_each_table(const std::vector<std::array<float*, P>>& ptrs, const std::vector<int64_t>& sizes,
                    Launch launch) {
  Table<P> tab{};
  int nt = 0, nb = 0;
  int64_t first_block = 0;
  auto flush = [&] {
    if (nb > 0) launch(tab, nb, first_block);
    first_block += nb;
    nt = 0;
    nb = 0;
  };
  for (std::size_t t = 0; t < ptrs.size(); ++t) {
    const int64_t n = sizes[t];
    if (n == 0) continue;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      if (nb == kMaxBlocks || (c == 0 && nt == kMaxTensors)) flush();
      if (c == 0 || nb == 0) {
        // A tensor whose chunks straddle two launches gets a slot in each.
        for (int k = 0; k < P; ++k) tab.ptr[k][nt] = ptrs[t][k];
        tab.n[nt] = n;
        ++nt;
      }
      tab.tensor_of_block[nb] = nt - 1;
      tab.chunk_of_block[nb] = static_cast<int>(c);
      ++nb;
    }
  }
  flush();
}

}  // namespace dd::kernels::cuda
