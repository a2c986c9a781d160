// Routing at the level of counts (issue 14 point 1): the per-(source rank, expert) token-expert pair counts of
// a layer drawn directly, O(experts) per source rank, instead of O(tokens x top_k) per-token picks.
//
// The generative model is the per-token sampler's: each token picks top_k DISTINCT experts by successive
// sampling without replacement from the weights w (the Plackett-Luce top-k). For one source rank of T tokens
// the count of expert e is exactly Binomial(T, pi_e), where pi_e is e's inclusion probability (the chance
// that e is among a token's k picks), and the counts sum to T * k.
//
//   exact:  pi (numerical integral, below; checked against enumeration in the tests); top_k = 1 (the counts
//           are Multinomial(T, w / sum w), drawn by conditional binomials); every expert of positive weight
//           picked (top_k = number of such experts: all counts T).
//   approximation (top_k > 1): independent Binomial(T, pi_e) per expert, then the difference to T * k added
//           (or removed) in proportion to each expert's variance T pi_e (1 - pi_e) (what conditioning the
//           binomials on their sum does to first order). Marginal means are exact; the variance of one count
//           is T pi_e (1 - pi_e) (1 - O(1 / experts)) against the exact T pi_e (1 - pi_e); the covariance between
//           experts is approximated the same way. Measured against the per-token sampler in
//           tests/models/test_routing_counts.cpp (means, variances, max/mean imbalance over many seeds);
//           figures in ARCHITECTURE.md.
//
// Inclusion probabilities: with exponential clocks X_f ~ Exp(p_f), p = w / sum w, the order of arrival is
// the successive-sampling order, so
//     pi_e = integral_0^inf p_e exp(-p_e t) P(N_{-e}(t) <= k - 1) dt,
// N_{-e}(t) = the number of other experts arrived by t, a Poisson-binomial with probabilities 1 - exp(-p_f t).
// P(N_{-e} <= k-1) comes from prefix and suffix products of the generating polynomials (q_f + a_f z)
// truncated at degree k - 1 (all terms non-negative: no cancellation), O(E k) per node for all experts; the
// integral runs over log t with 5-point Gauss-Legendre panels, 8 per decade, from t = 1e-7 (the head
// integrated in closed form) until the remaining mass is below 1e-16 for every expert.
#pragma once

#include <cstdint>
#include <vector>

#include "models/routing.hpp"

namespace moesim::models {

// Inclusion probabilities of top-k successive sampling by weights w (non-negative, at least k positive):
// pi[e] in [0, 1], sum = k, 0 for zero weights, equal for equal weights. Results are cached per (k, sorted
// weights) for the process (thread-safe), since every layer of a rotated zipf/hot ranking has the same
// weights in another order. Throws std::invalid_argument for fewer than k positive weights.
std::vector<double> inclusion_probabilities(const std::vector<double>& w, int k);

// Binomial(n, p) from our own stream (DESIGN rule 7: no std:: distributions): inversion below a mean of 10,
// else Hoermann's transformed rejection (BTRS, 1993) with an exact log-factorial acceptance test.
int64_t binomial(Rng& rng, int64_t n, double p);

// Adds to counts[0..E) the pair counts of T tokens that each pick k distinct experts with inclusion
// probabilities pi (E = pi.size(), sum pi = k): exact for k = 1 and when every positive pi is 1, else the
// approximation above. The counts added sum to T * k, and no count grows by more than T.
void sample_pair_counts(Rng& rng, const std::vector<double>& pi, int k, int64_t T, int64_t* counts);

}  // namespace moesim::models
