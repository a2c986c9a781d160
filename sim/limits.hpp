// Bounds of the scenario format: the largest value of every integer key and the range of every quantity
// that the engine and the samplers handle exactly. Every bound is documented in scenarios/README.md's key
// tables; a value outside is a validation error, never a truncation, an overflow or a SimGrid abort.
//
// Why these numbers:
//   - integers are decoded into `int`; every bound is far below 2^31 and products of keys that multiply are
//     checked (nodes x GPUs per node <= kMaxGpus; widths x heads fit int64 with room to spare);
//   - model widths up to 2^20 keep every FLOP and byte count of a step below 2^63 and exact in a double;
//   - quantities: SimGrid's max-min solver crashes or aborts on latencies of 1e-20 s or 1e6 s and on
//     bandwidths of 1e-300 B/s or inf; durations are kept in [1 ps, 1000 s] and rates far from 0 and inf
//     (the upper bounds leave room for the "infinitely fast" test GPU of tests/data/toy-profile.yaml),
//     so op durations and transfer times stay finite and positive.
#pragma once

#include <cstdint>

namespace moesim::limits {

// Cluster shape.
inline constexpr int64_t kMaxGpus = 65536;         // GPUs in one cluster (nodes x GPUs per node)
inline constexpr int64_t kMaxGpusPerNode = 4096;   // gpus of nvswitch_node / pcie_node, gpus_per_switch
inline constexpr int64_t kMaxNodes = 65536;        // multi_node nodes; explicit nodes[].node < kMaxNodes
inline constexpr int64_t kMaxNicsPerLeaf = 65536;  // fat_tree nics_per_leaf

// Model shape.
inline constexpr int64_t kMaxLayers = 100000;     // layers, moe_every, dense_layers
inline constexpr int64_t kMaxWidth = 1 << 20;     // hidden, expert_ffn, dense_ffn, shared_expert_ffn
inline constexpr int64_t kMaxVocab = 1 << 24;     // vocab_size (tokens; the largest shipped preset has 163,840)
inline constexpr int64_t kMaxHeadWidth = 65536;   // heads, kv_heads, head dims, LoRA ranks
inline constexpr int64_t kMaxExperts = 65536;     // routed_experts
inline constexpr int64_t kMaxTopK = 64;           // top_k (as variants' k)
inline constexpr int64_t kMaxSharedExperts = 1024;

// Workload.
inline constexpr int64_t kMaxSteps = 100000;  // workload.steps (memory is checked separately)
inline constexpr int64_t kMaxContext = 100000000;  // context_tokens, attention.window (tokens)

// Profiles.
inline constexpr int64_t kMaxSms = 65536;
inline constexpr int64_t kMaxTableDim = 1 << 24;  // a profile table's n and k

// Any integer key without a tighter bound: fits an int.
inline constexpr int64_t kMaxInt = 2147483647;

// Quantities in base units (a value of 0 is allowed only where the key's own rule allows it).
inline constexpr double kMinSeconds = 1e-12, kMaxSeconds = 1000.0;     // durations: 1 ps .. 1000 s
inline constexpr double kMinBandwidth = 1e3, kMaxBandwidth = 1e21;     // 1 KB/s .. 1e21 B/s
inline constexpr double kMinFlopRate = 1e9, kMaxFlopRate = 1e24;       // 1 GFLOP/s .. 1e24 FLOP/s
inline constexpr double kMinBytes = 1.0, kMaxBytes = 1e15;             // 1 B .. 1 PB

// Zipf exponent: with s <= 8 and at most kMaxExperts experts every weight is >= 2^-128 > 0, so every expert
// can be drawn and the sampler's picks are distinct.
inline constexpr double kMaxZipfS = 8.0;

}  // namespace moesim::limits
