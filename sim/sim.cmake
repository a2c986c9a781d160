# Included from sim/CMakeLists.txt: the layers above topologies/ and models/.

# Scenario loading, metrics, the variant runner.
add_library(moesim_sim STATIC scenario.cpp sha256.cpp metrics.cpp result_json.cpp runner.cpp output_file.cpp budget.cpp sweep.cpp mpi_split.cpp plan.cpp
            worker_pool.cpp
            collective_bench.cpp)
target_link_libraries(moesim_sim PUBLIC moesim_engine moesim_topologies moesim_models
                      nlohmann_json::nlohmann_json)

# MPI (when found) is linked here only: sim/mpi_session.cpp is the one file that includes mpi.h. It comes first
# on the link line on purpose: libsimgrid exports MPI_Init, MPI_Gather, ... too (its SMPI emulation), and the
# dynamic linker binds each symbol to the first library in DT_NEEDED order that defines it, so libmpi must
# come before libsimgrid (with libsimgrid first, MPI_Init is SimGrid's and aborts: "Your MPI program was not
# properly initialized"). tests/sim/mpi_sweep_test.sh fails if this order is lost.
add_executable(moesim main.cpp mpi_session.cpp)
if(MPI_C_FOUND)
  target_link_libraries(moesim PRIVATE MPI::MPI_C)
  target_compile_definitions(moesim PRIVATE MOESIM_HAVE_MPI=1)
endif()
target_link_libraries(moesim PRIVATE moesim_sim moesim_reports CLI11::CLI11)
set_target_properties(moesim PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
