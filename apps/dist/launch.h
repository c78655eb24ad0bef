#pragma once
// Who this process is in a data-parallel run: rank, world size and local rank, read from the
// variables the common launchers set. Detection is a pure function of an environment lookup so the
// tests can feed it any combination without touching the real environment.
//
// Launchers, in the order they are tried (the first whose rank variable is set wins, because
// mpirun under Slurm sets both families and the MPI one describes the actual processes):
//   Open MPI   OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   MPICH/PMI  PMI_RANK, PMI_SIZE, MPI_LOCALRANKID (local rank optional: 0 when absent)
//   torchrun   RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
//   Slurm      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
// None set: one process (rank 0 of 1).
#include <functional>
#include <optional>
#include <string>

namespace dd::dist {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string launcher = "single";  // single, openmpi, mpich, torchrun, slurm
  std::string master_addr;          // torchrun only
  int master_port = 0;              // torchrun only
  bool distributed() const { return world_size > 1; }
  bool is_root() const { return rank == 0; }
  std::string describe() const;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Throws dd::Error naming the variable for a launcher whose variables are partly set, a value that
// is not a non-negative integer, a world size below 1, or a rank (local rank) >= the world size.
LaunchEnv detect_launch(const EnvLookup& env);
// detect_launch over the process's environment (getenv).
LaunchEnv detect_launch();

}  // namespace dd::dist
