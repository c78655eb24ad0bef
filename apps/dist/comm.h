#pragma once
// The data-parallel communicator of the CPU path: MPI when the build found it (DD_WITH_MPI), else
// only world size 1. Ranks exchange the flat gradient arena (one MPI_Allreduce a step), the
// parameter arena (one MPI_Bcast from rank 0 at start and resume) and the logged loss.
//
// Without MPI, a launch with world size > 1 fails at once naming what is missing rather than
// running W independent copies that would each write the same files.
#include <memory>
#include <string>

#include "apps/dist/launch.h"
#include "engine/tensor.h"

namespace dd::dist {

class Comm {
 public:
  // World size 1 (no MPI calls at all): what a plain single-process run uses.
  Comm() = default;
  // Initialises MPI when env is distributed (or when launched by an MPI launcher), checks that MPI's
  // world agrees with the environment, and finalises in the destructor.
  static std::unique_ptr<Comm> init(const LaunchEnv& env);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return world_ > 1; }

  // In place: every rank ends with the elementwise mean over ranks of a float32 CPU tensor: MPI_SUM,
  // then a multiply by 1/W. With W = 2 the sum is one commutative addition, so both ranks hold the
  // same bits. For W > 2 the bits depend on MPI's reduction order; MPI does not promise every rank
  // the same result (Open MPI's algorithms give it in practice), and nothing re-synchronises the
  // weights if they ever drift by rounding.
  void allreduce_mean(Tensor& t) const;
  // In place: rank 0's float32 CPU tensor on every rank.
  void broadcast_from_root(Tensor& t) const;
  void barrier() const;
  // Prints the message and ends every rank (MPI_Abort), so a failing rank never leaves the others
  // waiting in a collective.
  [[noreturn]] void abort(const std::string& message) const;

  static bool mpi_available();

 private:
  int rank_ = 0;
  int world_ = 1;
  bool mpi_ = false;  // this object initialised MPI and finalises it
};

}  // namespace dd::dist
