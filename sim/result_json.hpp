// nlohmann::json conversions of the result model. Used to pass a VariantResult from the child process that
// simulated it back to the parent (doubles round-trip exactly), and by the JSON reporter.
#pragma once

#include <nlohmann/json.hpp>

#include "sim/result.hpp"

namespace moesim {

nlohmann::json variant_to_json(const VariantResult& v);
VariantResult variant_from_json(const nlohmann::json& j);

}  // namespace moesim
