// Splitting a list of independent items (sweep points; later the planner's candidates) across the ranks of an
// MPI job, and gathering each item's result bytes at rank 0 in item order. Used by `moesim sweep` under
// `mpirun -np N`; written so that any other command whose work is a list of independent items can adopt it.
//
// The order of events is the point of this design: a rank learns its rank and the job's size from the
// launcher's environment (mpi_world_from_env, no MPI call), does all of its work first (the sweep forks worker
// processes, and forking after MPI_Init is unsafe with OpenMPI), and only then starts MPI (MpiSession), once no
// child process of it is left, to gather the results. A moesim built without MPI (CMake found none) still
// reads the environment, so that it can refuse to run N copies of one sweep (mpi_compiled() is false).
//
// Which items are mine: item i belongs to rank i % size, the same rule as `moesim sweep --shard I/N` (rank r is
// shard r+1 of size), so a rank's partial CSV is a shard CSV that `moesim merge` also accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace moesim {

struct MpiWorld {
  int rank = 0;
  int size = 1;         // 1: not launched as an MPI job of several processes
  std::string source;   // the environment variables it was read from ("" when size is 1)
};

// Reads the rank and size an MPI launcher gives each process: OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE
// (OpenMPI's mpirun), else PMI_RANK / PMI_SIZE (MPICH's Hydra, Slurm's srun --mpi=pmi2). `env` looks a name up
// (std::getenv by default; a map in tests). Throws std::invalid_argument on a malformed value (a rank outside
// 0..size-1, a number that is not one).
using EnvLookup = std::function<const char*(const char*)>;
MpiWorld mpi_world_from_env(const EnvLookup& env = {});

// Whether item `item` is this rank's: item % size == rank.
inline bool mpi_mine(std::size_t item, const MpiWorld& w) {
  return item % static_cast<std::size_t>(w.size) == static_cast<std::size_t>(w.rank);
}

// Whether this moesim was built with MPI (CMake's find_package(MPI) found one); the functions below need it.
bool mpi_compiled();

// The wire format of a gather: each item as its index (8 bytes, little-endian), its length (8 bytes) and its
// bytes. decode throws std::runtime_error on a truncated buffer.
std::string mpi_encode_items(const std::map<std::size_t, std::string>& items);
std::map<std::size_t, std::string> mpi_decode_items(const std::string& bytes);

// MPI_Init on construction, MPI_Finalize on destruction; checks that MPI's rank and size are the ones the
// environment gave (throws std::runtime_error otherwise). Construct it only once no child process is running.
class MpiSession {
 public:
  explicit MpiSession(const MpiWorld& w);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  // Every rank's items at rank 0, merged in item order (an item given by two ranks throws at rank 0);
  // an empty map on the other ranks. Collective: every rank calls it once, in the same order as the others.
  std::map<std::size_t, std::string> gather_items(const std::map<std::size_t, std::string>& mine) const;
  // One string per rank at rank 0 (index = rank); empty on the other ranks. Collective.
  std::vector<std::string> gather_strings(const std::string& mine) const;
  // Rank 0's `value` on every rank. Collective.
  int broadcast(int value) const;

 private:
  MpiWorld world_;
};

}  // namespace moesim
