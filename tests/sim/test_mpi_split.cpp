// The MPI-free half of sim/mpi_split.hpp (issue 15 point 3): the rank and size read from the launcher's
// environment, which items are a rank's, the gather's wire format, and the sweep rows a rank sends and rank 0
// puts back in point order. The MPI half runs for real in the ctest mpi_sweep_matches_one_process
// (tests/sim/mpi_sweep_test.sh, two ranks under mpirun).
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "sim/mpi_split.hpp"
#include "sim/sweep.hpp"

using namespace moesim;

namespace {
EnvLookup env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}
}  // namespace

TEST_CASE("mpi split: rank and size from the launcher's environment", "[mpi]") {
  const MpiWorld none = mpi_world_from_env(env_of({}));
  CHECK(none.rank == 0);
  CHECK(none.size == 1);
  const MpiWorld ompi = mpi_world_from_env(env_of({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "3"}}));
  CHECK(ompi.rank == 2);
  CHECK(ompi.size == 3);
  CHECK(ompi.source == "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE");
  const MpiWorld pmi = mpi_world_from_env(env_of({{"PMI_RANK", "1"}, {"PMI_SIZE", "4"}}));
  CHECK(pmi.rank == 1);
  CHECK(pmi.size == 4);
  // One process launched by mpirun -np 1 is not a split.
  CHECK(mpi_world_from_env(env_of({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}})).size == 1);
  // OpenMPI's variables win over PMI's (mpirun sets both under some resource managers).
  CHECK(mpi_world_from_env(env_of({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"PMI_RANK", "0"},
                                   {"PMI_SIZE", "8"}}))
            .size == 2);
  for (const auto& bad : std::vector<std::map<std::string, std::string>>{
           {{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}},   // rank outside 0..size-1
           {{"OMPI_COMM_WORLD_RANK", "0"}},                                  // no size
           {{"PMI_RANK", "x"}, {"PMI_SIZE", "2"}},                           // not a number
           {{"PMI_RANK", "0"}, {"PMI_SIZE", "0"}}})                          // no process
    CHECK_THROWS_AS(mpi_world_from_env(env_of(bad)), std::invalid_argument);
}

TEST_CASE("mpi split: item i is rank i % size's, as shard i % N + 1 of --shard", "[mpi]") {
  // 7 items on 3 ranks: rank 0 has 0, 3, 6; rank 1 has 1, 4; rank 2 has 2, 5 (every item exactly once).
  std::map<int, std::vector<std::size_t>> got;
  for (int r = 0; r < 3; ++r)
    for (std::size_t i = 0; i < 7; ++i)
      if (mpi_mine(i, MpiWorld{r, 3, ""})) got[r].push_back(i);
  CHECK(got[0] == std::vector<std::size_t>{0, 3, 6});
  CHECK(got[1] == std::vector<std::size_t>{1, 4});
  CHECK(got[2] == std::vector<std::size_t>{2, 5});
}

TEST_CASE("mpi split: the gather's wire format round-trips and refuses a truncated buffer", "[mpi]") {
  const std::map<std::size_t, std::string> items{{0, ""}, {5, "a,b\n"}, {300, std::string("x\0y", 3)}};
  const std::string bytes = mpi_encode_items(items);
  // 3 items x (8-byte index + 8-byte length) + 0 + 4 + 3 bytes of content.
  CHECK(bytes.size() == 3 * 16 + 7);
  CHECK(mpi_decode_items(bytes) == items);
  CHECK(mpi_decode_items("").empty());
  CHECK_THROWS_AS(mpi_decode_items(bytes.substr(0, bytes.size() - 1)), std::runtime_error);
  CHECK_THROWS_AS(mpi_decode_items(bytes.substr(0, 10)), std::runtime_error);
}

TEST_CASE("mpi split: a sweep's rows by point, and back in point order", "[mpi][sweep]") {
  SweepTable t;
  t.columns = {"point", "k", "variant"};
  t.rows = {{"0", "1", "a"}, {"0", "1", "b"}, {"2", "x,y", "a"}};
  const auto by_point = sweep_rows_by_point(t);
  REQUIRE(by_point.size() == 2);
  CHECK(by_point.at(0) == "0,1,a\n0,1,b\n");
  CHECK(by_point.at(2) == "2,\"x,y\",a\n");  // RFC 4180 quoting, as in the CSV
  // Rank 0 receives points out of order from two ranks; the table comes back in point order.
  SweepTable u;
  u.columns = t.columns;
  set_sweep_rows(u, {{2, by_point.at(2)}, {1, "1,7,a\n"}, {0, by_point.at(0)}});
  CHECK(u.rows == std::vector<std::vector<std::string>>{
                      {"0", "1", "a"}, {"0", "1", "b"}, {"1", "7", "a"}, {"2", "x,y", "a"}});
  CHECK_THROWS_AS(set_sweep_rows(u, {{1, "1,7,a"}}), std::runtime_error);     // torn: no line end
  CHECK_THROWS_AS(set_sweep_rows(u, {{1, "1,7\n"}}), std::runtime_error);     // 2 fields, 3 columns
  CHECK_THROWS_AS(set_sweep_rows(u, {{1, "2,7,a\n"}}), std::runtime_error);   // a row of another point
}
