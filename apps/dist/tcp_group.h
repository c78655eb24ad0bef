#pragma once
// The TCP process group of a torchrun-style launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) on
// the CPU path, where no MPI launcher started the ranks: rank 0 listens at MASTER_PORT, every other
// rank connects to MASTER_ADDR:MASTER_PORT and introduces itself (a magic word, its rank and the
// world size it was given); rank 0 refuses a wrong world size, a rank out of range or twice.
//
// Collectives go through rank 0 (a star): it receives every rank's buffer, adds them in rank order
// (((x0 + x1) + x2) + ...), scales by 1/W and sends the result back. So every rank holds the same
// bits for any W, and a run is reproducible for a given world size; for W = 2 the sum is the one
// addition MPI's all-reduce also does, so both backends agree bit for bit. The star moves W times
// the buffer through rank 0, which suits the CPU path's models (a few million parameters).
//
// Nothing waits forever: connecting retries until the timeout (rank 0 may start later), and every
// send and receive gives up after it, naming the peer; a peer that exits closes its socket, which
// the others see at once as an error. The timeout (DD_DIST_TIMEOUT seconds, default 1800) bounds
// how long a rank may wait for the slowest one in a collective, so it must exceed the longest
// phase one rank runs alone (rank 0's checkpoints, sample grids and FID evaluations).
#include <cstdint>
#include <string>
#include <vector>

namespace dd::dist {

class TcpGroup {
 public:
  // Blocks until the whole world has joined (rank 0) or rank 0 has accepted this rank (others).
  TcpGroup(int rank, int world_size, const std::string& master_addr, int master_port, double timeout_s);
  ~TcpGroup();
  TcpGroup(const TcpGroup&) = delete;
  TcpGroup& operator=(const TcpGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }

  // In place: the sum over ranks in rank order, times 1/W; the same bits on every rank.
  void allreduce_mean(float* data, int64_t n);
  // In place: rank 0's values on every rank.
  void broadcast_from_root(float* data, int64_t n);
  // In place: rank 0's bytes on every rank (NCCL's unique id travels this way, apps/dist/nccl_comm.h).
  void broadcast_bytes(void* data, size_t bytes);
  void barrier();
  // Closes every connection at once (the peers see the group end and fail instead of waiting).
  void close_all();

  // DD_DIST_TIMEOUT (seconds) or the default; throws naming the variable when it is not a number > 0.
  static double timeout_from_env();

 private:
  void send_all(int fd, const void* p, size_t bytes, int peer);
  void recv_all(int fd, void* p, size_t bytes, int peer);

  int rank_, world_;
  double timeout_s_;
  int listen_fd_ = -1;
  std::vector<int> peers_;  // rank 0: the socket of rank r at r (index 0 unused); others: [0] = rank 0
  std::vector<float> scratch_;
};

}  // namespace dd::dist
