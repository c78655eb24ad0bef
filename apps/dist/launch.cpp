#include "apps/dist/launch.h"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "engine/error.h"

namespace dd::dist {

namespace {

// Strict: the whole value must be decimal digits (no sign, no spaces, no "2x"), because a
// half-parsed rank would silently put two processes on the same shard.
int parse_count(const std::string& name, const std::string& value, const std::string& launcher) {
  DD_CHECK(!value.empty(), "environment variable ", name, " (", launcher, " launch) is empty; expected an integer");
  for (char c : value)
    DD_CHECK(c >= '0' && c <= '9', "environment variable ", name, "='", value, "' (", launcher,
             " launch) is not a non-negative integer");
  errno = 0;
  const unsigned long long v = std::strtoull(value.c_str(), nullptr, 10);
  DD_CHECK(errno == 0 && v <= static_cast<unsigned long long>(std::numeric_limits<int>::max()),
           "environment variable ", name, "='", value, "' (", launcher, " launch) is out of range");
  return static_cast<int>(v);
}

struct Family {
  const char* launcher;
  const char* rank;
  const char* size;
  const char* local;     // nullptr: none
  bool local_required;
};

// The order matters (see the header): MPI launchers first, Slurm last.
const Family kFamilies[] = {
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", true},
    {"mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", false},
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", true},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", true},
};

}  // namespace

std::string LaunchEnv::describe() const {
  std::string s = "rank " + std::to_string(rank) + " of " + std::to_string(world_size) + " (local rank " +
                  std::to_string(local_rank) + ", " + launcher + ")";
  if (!master_addr.empty()) s += " master " + master_addr + ":" + std::to_string(master_port);
  return s;
}

LaunchEnv detect_launch(const EnvLookup& env) {
  for (const Family& f : kFamilies) {
    const std::optional<std::string> rank = env(f.rank);
    if (!rank) continue;
    const std::string who = f.launcher;
    auto need = [&](const char* name) {
      const std::optional<std::string> v = env(name);
      DD_CHECK(v.has_value(), "environment variable ", name, " is not set, but ", f.rank, "=", *rank, " is (",
               who, " launch): the launcher set only part of its variables");
      return *v;
    };
    LaunchEnv e;
    e.launcher = who;
    e.rank = parse_count(f.rank, *rank, who);
    e.world_size = parse_count(f.size, need(f.size), who);
    DD_CHECK(e.world_size >= 1, "environment variable ", f.size, "=", e.world_size, " (", who,
             " launch): the world size must be at least 1");
    DD_CHECK(e.rank < e.world_size, "environment variable ", f.rank, "=", e.rank, " is not below ", f.size, "=",
             e.world_size, " (", who, " launch): ranks run from 0 to world size - 1");
    if (f.local) {
      const std::optional<std::string> local = f.local_required ? std::optional<std::string>(need(f.local)) : env(f.local);
      if (local) e.local_rank = parse_count(f.local, *local, who);
      DD_CHECK(e.local_rank < e.world_size, "environment variable ", f.local, "=", e.local_rank, " is not below ",
               f.size, "=", e.world_size, " (", who, " launch)");
    }
    if (who == "torchrun" && e.world_size > 1) {
      // Only needed to rendezvous; a single torchrun process may leave them out.
      e.master_addr = need("MASTER_ADDR");
      DD_CHECK(!e.master_addr.empty(), "environment variable MASTER_ADDR is empty (torchrun launch)");
      e.master_port = parse_count("MASTER_PORT", need("MASTER_PORT"), who);
      DD_CHECK(e.master_port >= 1 && e.master_port <= 65535, "environment variable MASTER_PORT=", e.master_port,
               " (torchrun launch) is not a TCP port (1..65535)");
    }
    return e;
  }
  // Nothing set, but a stray size variable suggests a broken launch rather than a single process.
  for (const Family& f : kFamilies) {
    const std::optional<std::string> size = env(f.size);
    DD_CHECK(!size.has_value(), "environment variable ", f.rank, " is not set, but ", f.size, "=", *size, " is (",
             f.launcher, " launch): the launcher set only part of its variables");
  }
  return LaunchEnv{};
}

LaunchEnv detect_launch() {
  return detect_launch([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace dd::dist
