#include "models/step_ops.hpp"

#include <stdexcept>

namespace moesim::models {

namespace {
constexpr double kActBytes = 2.0;  // bf16 activations (as in cost_model.cpp)
}

KernelCost StepOpCosts::embedding(int64_t tokens) const {
  const Architecture& a = cost_.architecture();
  if (tokens <= 0 || a.vocab_size <= 0) return {0.0, cost_.profile().roofline_provenance()};
  const double th = static_cast<double>(tokens) * a.hidden;
  return cost_.roofline(KernelClass::elementwise, DType::bf16, 0.0, 2.0 * th * dtype_bytes(a.dtype));
}

KernelCost StepOpCosts::embedding_backward(int64_t tokens) const {
  const Architecture& a = cost_.architecture();
  if (tokens <= 0 || a.vocab_size <= 0) return {0.0, cost_.profile().roofline_provenance()};
  const double th = static_cast<double>(tokens) * a.hidden;
  return cost_.roofline(KernelClass::elementwise, DType::bf16, th, 3.0 * th * dtype_bytes(a.dtype));
}

KernelCost StepOpCosts::norm(int64_t tokens) const {
  if (tokens <= 0) return {0.0, cost_.profile().roofline_provenance()};
  const double h = cost_.architecture().hidden, th = static_cast<double>(tokens) * h;
  return cost_.roofline(KernelClass::elementwise, DType::bf16, 4.0 * th, (2.0 * th + h) * kActBytes);
}

KernelCost StepOpCosts::residual(int64_t tokens) const {
  if (tokens <= 0) return {0.0, cost_.profile().roofline_provenance()};
  const double th = static_cast<double>(tokens) * cost_.architecture().hidden;
  return cost_.roofline(KernelClass::elementwise, DType::bf16, th, 3.0 * th * kActBytes);
}

KernelCost StepOpCosts::lm_head(int64_t rows) const {
  const Architecture& a = cost_.architecture();
  if (rows <= 0 || a.vocab_size <= 0) return {0.0, cost_.profile().roofline_provenance()};
  return cost_.gemm("lm_head", a.dtype, rows, a.vocab_size, a.hidden);
}

KernelCost StepOpCosts::loss(int64_t rows) const {
  const Architecture& a = cost_.architecture();
  if (rows <= 0 || a.vocab_size <= 0) return {0.0, cost_.profile().roofline_provenance()};
  const double logits = static_cast<double>(rows) * a.vocab_size;
  return cost_.roofline(KernelClass::elementwise, DType::bf16, 5.0 * logits, 3.0 * logits * kActBytes);
}

KernelCost StepOpCosts::adam(double params) const {
  if (params <= 0) return {0.0, cost_.profile().roofline_provenance()};
  return cost_.roofline(KernelClass::elementwise, DType::bf16, kAdamFlopsPerParam * params,
                        (kAdamReadBytesPerParam + kAdamWriteBytesPerParam) * params);
}

double StepOpCosts::block_params(int layer) const {
  const Architecture& a = cost_.architecture();
  const double h = a.hidden;
  double n = cost_.attention_params() + 2.0 * h;  // projections + the two norms' weights
  if (a.is_moe_layer(layer)) {
    n += h * a.routed_experts;  // router
    n += ffn_matrices(a.expert_activation) * h * a.shared_ffn_total();
  } else {
    n += ffn_matrices(a.dense_activation) * h * a.dense_ffn;
  }
  return n;
}

double StepOpCosts::expert_params(const std::vector<int>& experts, int etp) const {
  if (etp < 1) throw std::invalid_argument("expert_params: etp must be >= 1");
  const Architecture& a = cost_.architecture();
  double n = 0;
  for (int e : experts) n += ffn_matrices(a.expert_activation) * static_cast<double>(a.hidden) * a.ffn_of_expert(e);
  return n / etp;
}

double StepOpCosts::outer_params() const {
  const Architecture& a = cost_.architecture();
  return 2.0 * static_cast<double>(a.vocab_size) * a.hidden + a.hidden;
}

int64_t lm_head_rows(bool training, bool decode, int64_t tokens, int64_t context_tokens) {
  if (tokens <= 0) return 0;
  if (training || decode || context_tokens <= 0) return tokens;
  return (tokens + context_tokens - 1) / context_tokens;
}

}  // namespace moesim::models
