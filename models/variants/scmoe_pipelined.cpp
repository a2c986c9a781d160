// Schedule `scmoe_pipelined`: ScMoE (see scmoe.cpp for the timelines, positions and slots) whose dispatch and
// combine all-to-alls are split into `chunks` token chunks on the comm stream, so that the expert GEMM of
// chunk i can start while chunk i+1 is still being dispatched. Useful when the communication is longer than
// the backbone window ScMoE hides it behind; with chunks: 1 it is exactly `scmoe`.
#include "models/variants/variant.hpp"

namespace moesim::models {

OpGraph build_scmoe_chunked(const VariantSpec& spec, const StepInput& in, int parts);  // scmoe.cpp

OpGraph build_scmoe_pipelined(const VariantSpec& spec, const StepInput& in) {
  return build_scmoe_chunked(spec, in, spec.chunks);
}

}  // namespace moesim::models
