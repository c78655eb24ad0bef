#pragma once
// The data-parallel communicator of the CPU path. Ranks exchange the flat gradient arena (one
// all-reduce a step), the parameter arena (one broadcast from rank 0 at start and resume) and the
// logged loss, over
//   MPI   when an MPI launcher (mpirun, mpiexec, srun --mpi) started the ranks and the build found
//         MPI (DD_WITH_MPI);
//   TCP   when torchrun-style variables did (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): rank 0
//         listens, the others connect (apps/dist/tcp_group.h); no MPI needed.
// A launch with world size > 1 that neither can serve fails at once naming what is missing rather
// than running W independent copies that would each write the same files.
#include <cstddef>
#include <memory>
#include <string>

#include "apps/dist/launch.h"
#include "apps/dist/tcp_group.h"
#include "engine/tensor.h"

namespace dd::dist {

class Comm {
 public:
  // World size 1 (no MPI calls at all): what a plain single-process run uses.
  Comm() = default;
  // A torchrun-style distributed env joins the TCP group; otherwise MPI is initialised when env is
  // distributed (or launched by an MPI launcher), its world checked against the environment, and
  // finalised in the destructor.
  static std::unique_ptr<Comm> init(const LaunchEnv& env);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  // This process's index among the ranks on its node (the launcher's local rank): its GPU.
  int local_rank() const { return local_rank_; }
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return world_ > 1; }

  // In place: every rank ends with the elementwise mean over ranks of a float32 CPU tensor: the sum,
  // then a multiply by 1/W. With W = 2 the sum is one commutative addition, so both ranks hold the
  // same bits, and MPI and TCP agree. For W > 2 over MPI the bits depend on MPI's reduction order;
  // MPI does not promise every rank the same result (Open MPI's algorithms give it in practice), and
  // nothing re-synchronises the weights if they ever drift by rounding. Over TCP rank 0 adds in rank
  // order for every rank: the same bits everywhere, for any W.
  void allreduce_mean(Tensor& t) const;
  // In place: rank 0's float32 CPU tensor on every rank.
  void broadcast_from_root(Tensor& t) const;
  // In place: rank 0's bytes on every rank (MPI_Bcast of MPI_BYTE, or the TCP group's broadcast);
  // how the GPU communicator's bootstrap id reaches the ranks (apps/dist/nccl_comm.h).
  void broadcast_bytes(void* data, size_t bytes) const;
  void barrier() const;
  // Prints the message and ends every rank (MPI_Abort; over TCP the closed sockets end the others'
  // next collective), so a failing rank never leaves the others waiting.
  [[noreturn]] void abort(const std::string& message) const;

  static bool mpi_available();
  const char* backend() const { return tcp_ ? "tcp" : mpi_in_use_ ? "mpi" : "none"; }

 private:
  int rank_ = 0;
  int world_ = 1;
  int local_rank_ = 0;
  bool mpi_ = false;         // this object initialised MPI and finalises it
  bool mpi_in_use_ = false;  // collectives go through MPI
  std::unique_ptr<TcpGroup> tcp_;
};

}  // namespace dd::dist
