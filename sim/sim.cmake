# Included from sim/CMakeLists.txt: the layers above topologies/ and models/.

# Scenario loading, metrics, the variant runner.
add_library(moesim_sim STATIC scenario.cpp sha256.cpp metrics.cpp result_json.cpp runner.cpp output_file.cpp budget.cpp sweep.cpp plan.cpp
            collective_bench.cpp)
target_link_libraries(moesim_sim PUBLIC moesim_engine moesim_topologies moesim_models
                      nlohmann_json::nlohmann_json)

add_executable(moesim main.cpp)
target_link_libraries(moesim PRIVATE moesim_sim moesim_reports CLI11::CLI11)
set_target_properties(moesim PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
