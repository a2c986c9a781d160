// MpiSession and mpi_compiled() of sim/mpi_split.hpp: compiled into the moesim executable only, against MPI when
// CMake found it (MOESIM_HAVE_MPI), so the libraries and the tests never link MPI.
#include "sim/mpi_split.hpp"

#include <climits>
#include <fmt/format.h>

#ifdef MOESIM_HAVE_MPI
// The C API only: without these, OpenMPI's (and MPICH's) mpi.h pulls in the deprecated C++ bindings, whose
// library (libmpi_cxx) MPI::MPI_C does not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace moesim {

#ifdef MOESIM_HAVE_MPI

bool mpi_compiled() { return true; }

namespace {
void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(fmt::format("{} failed (MPI error {})", what, rc));
}
}  // namespace

MpiSession::MpiSession(const MpiWorld& w) : world_(w) {
  check(MPI_Init(nullptr, nullptr), "MPI_Init");
  // Errors are returned to us (and thrown) rather than aborting the job without a word.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != w.rank || size != w.size) {
    MPI_Finalize();
    throw std::runtime_error(fmt::format("MPI says rank {} of {}, the launcher's environment ({}) said {} of {}",
                                         rank, size, w.source, w.rank, w.size));
  }
}

MpiSession::~MpiSession() { MPI_Finalize(); }

std::vector<std::string> MpiSession::gather_strings(const std::string& mine) const {
  if (mine.size() > static_cast<std::size_t>(INT_MAX))
    throw std::runtime_error("MPI gather: more than 2 GiB from one rank");
  const int n = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<std::size_t>(world_.size)), displs(counts.size());
  check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
  std::string all;
  if (world_.rank == 0) {
    long long total = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      displs[r] = static_cast<int>(total);
      total += counts[r];
      if (total > INT_MAX) throw std::runtime_error("MPI gather: more than 2 GiB in all");
    }
    all.resize(static_cast<std::size_t>(total));
  }
  check(MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, 0, MPI_COMM_WORLD),
        "MPI_Gatherv");
  std::vector<std::string> out;
  if (world_.rank == 0)
    for (std::size_t r = 0; r < counts.size(); ++r)
      out.push_back(all.substr(static_cast<std::size_t>(displs[r]), static_cast<std::size_t>(counts[r])));
  return out;
}

std::map<std::size_t, std::string> MpiSession::gather_items(const std::map<std::size_t, std::string>& mine) const {
  std::map<std::size_t, std::string> out;
  const std::vector<std::string> per_rank = gather_strings(mpi_encode_items(mine));
  for (std::size_t r = 0; r < per_rank.size(); ++r)
    for (auto& [i, bytes] : mpi_decode_items(per_rank[r]))
      if (!out.emplace(i, std::move(bytes)).second)
        throw std::runtime_error(fmt::format("MPI gather: item {} came from two ranks", i));
  return out;
}

int MpiSession::broadcast(int value) const {
  check(MPI_Bcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast");
  return value;
}

#else  // built without MPI

bool mpi_compiled() { return false; }

namespace {
[[noreturn]] void no_mpi() { throw std::runtime_error("this moesim was built without MPI"); }
}  // namespace

MpiSession::MpiSession(const MpiWorld& w) : world_(w) { no_mpi(); }
MpiSession::~MpiSession() = default;
std::map<std::size_t, std::string> MpiSession::gather_items(const std::map<std::size_t, std::string>&) const {
  no_mpi();
}
std::vector<std::string> MpiSession::gather_strings(const std::string&) const { no_mpi(); }
int MpiSession::broadcast(int) const { no_mpi(); }

#endif

}  // namespace moesim
