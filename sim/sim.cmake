# Included from sim/CMakeLists.txt: the layers above topologies/ and models/.

# Schedule variants (models/variants): the op-graph builders.
add_library(moesim_variants STATIC
  ${CMAKE_SOURCE_DIR}/models/variants/step_costs.cpp
  ${CMAKE_SOURCE_DIR}/models/variants/schedule_util.cpp
  ${CMAKE_SOURCE_DIR}/models/variants/registry.cpp
  ${CMAKE_SOURCE_DIR}/models/variants/topk.cpp)
target_link_libraries(moesim_variants PUBLIC moesim_models)

# Scenario loading, metrics, the variant runner.
add_library(moesim_sim STATIC scenario.cpp sha256.cpp metrics.cpp result_json.cpp runner.cpp)
target_link_libraries(moesim_sim PUBLIC moesim_engine moesim_variants moesim_topologies moesim_models
                      nlohmann_json::nlohmann_json)

add_executable(moesim main.cpp)
target_link_libraries(moesim PRIVATE moesim_sim moesim_reports CLI11::CLI11)
set_target_properties(moesim PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
