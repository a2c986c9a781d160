// The op graph: what a schedule variant builds and the engine executes.
//
// Each rank (EP rank = one GPU) has two in-order streams, compute and comm, like CUDA streams: an op added to
// a (rank, stream) automatically depends on the op added before it on that same (rank, stream) (DESIGN rule
// 1: a GPU stream runs in order; computation never overlaps computation on one stream). Cross-stream and
// cross-rank ordering is expressed with explicit deps (CUDA events). Collectives (all-to-all, all-gather,
// reduce-scatter) have one op per participating rank, all sharing one byte matrix; rank r's op finishes when
// every flow it sends or receives has arrived. All-gathers and reduce-scatters run within a group of ranks
// (an expert-tensor-parallel group) and are given as the direct exchange each member makes (see
// add_collective), which on a non-blocking switch has the ring algorithm's bandwidth term (N-1)/N * S / B.
//
// Invariants: deps point to ops added earlier (so the graph is acyclic by construction); durations >= 0.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moesim {

using OpId = uint32_t;

// dp: the data-parallel gradient all-reduce, on a stream of its own (as frameworks issue it on a separate NCCL
// stream), so it overlaps the backward pass without queueing behind or ahead of the EP all-to-alls.
enum class Stream : uint8_t { compute = 0, comm = 1, dp = 2 };
inline constexpr int kStreams = 3;
enum class OpKind : uint8_t { compute = 0, all_to_all = 1, all_gather = 2, reduce_scatter = 3 };
const char* op_kind_name(OpKind k);
enum class Phase : uint8_t { forward = 0, backward = 1 };

// Where a compute cost came from (DESIGN rule 8). Communication ops carry `emergent`: their time comes from
// the network model during simulation.
enum class Provenance : uint8_t { measured = 0, fitted = 1, derived = 2, datasheet = 3, emergent = 4 };
const char* provenance_name(Provenance p);

// What an op does, for time breakdowns ("attention", "expert", "dispatch", ...).
enum class OpClass : uint8_t {
  attention, gate, permute, dispatch, expert, combine, unpermute, shared_expert, dense_mlp, cast, other,
  weight_move,  // moving expert weights between ranks (EPLB re-placement)
  // Expert tensor parallelism (ETP): the all-gather of dispatched tokens within an expert's TP group, and the
  // reduce-scatter of the partial expert outputs before the combine all-to-all.
  expert_all_gather, expert_reduce_scatter,
  // The rest of a step (issue 13 point 4; costs in models/step_ops.hpp): the token embedding lookup, RMSNorm /
  // LayerNorm, residual adds, the LM head GEMM, the cross-entropy loss, the optimizer step and the data-parallel
  // gradient all-reduce.
  embedding, norm, residual, lm_head, loss, optimizer, dp_all_reduce,
  // Models built of stages: the patch merging before a stage's first block (models/variants/schedule_util.hpp).
  patch_merge
};
// Whether an op belongs to the step around the transformer blocks (embedding, the final norm, LM head, loss,
// optimizer, DP gradient all-reduce) rather than to a block: what `scope: block` leaves out.
bool is_step_level(OpClass c, int layer);
const char* op_class_name(OpClass c);

// The precision a compute op runs at, when a schedule chooses it per rank (ReaLB): `model` = the model's dtype.
enum class OpPrecision : uint8_t { model = 0, bf16 = 1, fp8 = 2, fp4 = 3 };
const char* op_precision_name(OpPrecision p);

struct Op {
  OpId id = 0;
  OpKind kind = OpKind::compute;
  OpClass cls = OpClass::other;
  Stream stream = Stream::compute;
  Phase phase = Phase::forward;
  Provenance provenance = Provenance::datasheet;
  int32_t rank = 0;
  int32_t layer = -1;       // model layer, -1 when the op belongs to none
  int32_t chunk = -1;       // pipelining chunk, -1 when unchunked
  int32_t collective = -1;  // index into OpGraph::collectives() for collective ops (every kind but compute)
  int32_t step = 0;         // workload step (batch) the op belongs to (multi-step runs; 0 otherwise)
  OpPrecision precision = OpPrecision::model;
  double duration_s = 0.0;  // compute ops: the cost model's duration (seconds)
  std::vector<OpId> deps;   // explicit deps, including the implicit stream predecessor
};

inline constexpr OpId kNoOp = UINT32_MAX;

// One transfer of a sparse collective: member index src sends `bytes` to member index dst.
struct Transfer {
  int32_t src = 0, dst = 0;
  double bytes = 0.0;
};

// A dense collective's byte matrix (M x M, row-major), immutable once made and shared between collectives that
// carry the same bytes: a training layer's forward dispatch and backward combine (and forward combine and
// backward dispatch) move the same matrix, and DP replicas (OpGraph::replicate) repeat every matrix. At EP
// 256 a training step's 244 matrices are 512 KiB each; sharing halves them, and the pages nobody touches are
// time saved (a fresh page is zeroed by the kernel on first touch).
class ByteMatrix {
 public:
  ByteMatrix() = default;
  ByteMatrix(std::vector<double> bytes)  // NOLINT(google-explicit-constructor): a vector is a matrix
      : p_(bytes.empty() ? nullptr : std::make_shared<const std::vector<double>>(std::move(bytes))) {}
  ByteMatrix(std::initializer_list<double> bytes) : ByteMatrix(std::vector<double>(bytes)) {}
  const std::vector<double>& values() const { return p_ ? *p_ : empty_; }
  operator const std::vector<double>&() const { return values(); }  // NOLINT(google-explicit-constructor)
  bool empty() const { return !p_ || p_->empty(); }
  std::size_t size() const { return p_ ? p_->size() : 0; }
  double operator[](std::size_t i) const { return (*p_)[i]; }
  std::vector<double>::const_iterator begin() const { return values().begin(); }
  std::vector<double>::const_iterator end() const { return values().end(); }
  friend bool operator==(const ByteMatrix& a, const std::vector<double>& b) { return a.values() == b; }

 private:
  std::shared_ptr<const std::vector<double>> p_;
  static inline const std::vector<double> empty_{};
};

// A collective's bytes are either dense (M x M, for all-to-alls and group collectives, where most pairs carry
// bytes) or sparse (`transfers`, for collectives whose pairs are O(M): a ring all-reduce over thousands of
// ranks would otherwise hold M^2 doubles, 32 MB per gradient bucket at 2,048 ranks). A sparse collective is
// a ring: data passes through every member, so every member's op ends with its last transfer, in both
// fidelities (exact: when the last flow ends; fast: the one parallel task), as a NCCL ring's ranks do. A
// dense one lets each member finish with its own flows (exact).
struct Collective {
  OpKind kind = OpKind::all_to_all;
  std::vector<int32_t> members;  // participating ranks, ascending (every rank of the graph for an all-to-all)
  ByteMatrix bytes;              // dense: M x M over members (M = members.size()), row-major: bytes[i * M + j]
                                 // from members[i] to members[j]; diagonal ignored. Empty when sparse.
  std::vector<Transfer> transfers;  // sparse: positive transfers, i != j, sorted by (src, dst), unique
  std::vector<OpId> ops;         // ops[i] = the op of members[i]
  // Whether the call pays EngineOptions::collective_launch_s. False for the second phase of one library call
  // that the graph builds as two collectives: a ring all-reduce is a reduce-scatter then an all-gather, but
  // NCCL launches one kernel for it, so only the first phase pays the launch.
  bool pays_launch = true;
  int size() const { return static_cast<int>(members.size()); }
  bool sparse() const { return bytes.empty(); }
  // Index of `rank` among the members, -1 when it is not one.
  int member_index(int rank) const;
  // Bytes from member i to member j (0 on the diagonal and for pairs without a transfer).
  double bytes_between(int i, int j) const;
  // Calls f(i, j, bytes) for every pair of distinct members with bytes > 0, in (i, j) order.
  template <class F>
  void for_each_transfer(F&& f) const {
    if (sparse()) {
      for (const Transfer& t : transfers) f(static_cast<int>(t.src), static_cast<int>(t.dst), t.bytes);
      return;
    }
    const auto M = static_cast<std::size_t>(members.size());
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t j = 0; j < M; ++j)
        if (i != j && bytes[i * M + j] > 0) f(static_cast<int>(i), static_cast<int>(j), bytes[i * M + j]);
  }
};

class OpGraph {
 public:
  explicit OpGraph(int ranks);

  int ranks() const { return ranks_; }
  const std::vector<Op>& ops() const { return ops_; }
  const Op& op(OpId id) const { return ops_[id]; }
  const std::vector<Collective>& collectives() const { return collectives_; }

  // Adds a compute op to (rank, stream) after that stream's previous op and after `deps`.
  OpId add_compute(int rank, Stream stream, OpClass cls, Phase phase, int layer, double duration_s,
                   Provenance prov, std::vector<OpId> deps = {}, int chunk = -1);

  // Adds an all-to-all: one op per rank on `stream`; rank r's op waits for its stream predecessor and for
  // deps_per_rank[r] (may be empty). `bytes` is ranks x ranks row-major. Returns the per-rank op ids.
  std::vector<OpId> add_all_to_all(Stream stream, OpClass cls, Phase phase, int layer, ByteMatrix bytes,
                                   const std::vector<std::vector<OpId>>& deps_per_rank, int chunk = -1);
  // Adds a collective of `kind` among `members` (distinct ranks, ascending): one op per member on `stream`.
  // `bytes` (M x M over the members, row-major) is what each member sends each other member: an all-gather(v)
  // of shards s_i is bytes[i][j] = s_i for every member j != i, a reduce-scatter(v) whose member i ends with
  // a reduced block of b_i is bytes[j][i] = b_i (the reduction itself is not costed: it runs inside the
  // communication kernel, bounded by the link). deps_per_rank is indexed by graph rank (or empty). Throws
  // std::invalid_argument on unsorted/duplicate members or bytes < 0. Returns per-rank op ids (size ranks();
  // kNoOp for non-members).
  std::vector<OpId> add_collective(OpKind kind, std::vector<int> members, Stream stream, OpClass cls, Phase phase,
                                   int layer, ByteMatrix bytes,
                                   const std::vector<std::vector<OpId>>& deps_per_rank, int chunk = -1);

  // The same with sparse bytes: `transfers` over member indices (each 0 <= src, dst < M, src != dst, bytes >= 0;
  // zero transfers are dropped; sorted and checked for duplicates here).
  std::vector<OpId> add_collective(OpKind kind, std::vector<int> members, Stream stream, OpClass cls, Phase phase,
                                   int layer, std::vector<Transfer> transfers,
                                   const std::vector<std::vector<OpId>>& deps_per_rank, int chunk = -1);

  // Appends the ops and collectives of `next` (built for the same ranks) as workload step `step`: ids and
  // deps are shifted, and the first op of each (rank, stream) of `next` also waits for the last op of both
  // streams of that rank here, so rank r starts step `step` when it has finished everything before it (no
  // global barrier: ranks are coupled through the all-to-alls, as in a serving loop).
  void append(const OpGraph& next, int step);

  // The same append in two halves, so that the costly one can run apart from the graph (the runner's step
  // builder thread, while the engine simulates the graph): chunk() turns `next` into the ops and collectives
  // append(next, step) would add to a graph in state `at` (ids, deps and collective indices final), and
  // advances `at` past them; append(Chunk&&) moves them in. Appending the chunks in the order they were made
  // gives the graph append() gives. A chunk made for another state is a std::logic_error.
  struct Received;
  struct Tail {
    OpId ops = 0;
    std::size_t collectives = 0;
    std::vector<int64_t> last;  // per (rank, stream): the last op, -1 for none
  };
  struct Chunk;
  Tail tail() const { return {static_cast<OpId>(ops_.size()), collectives_.size(), last_}; }
  static Chunk chunk(const OpGraph& next, int step, Tail& at);
  void append(Chunk&& c);

  // Marks collective `c` (an index into collectives()) as the continuation of the call before it: it does not
  // pay the collective launch (Collective::pays_launch).
  void continue_call(int c) { collectives_.at(static_cast<std::size_t>(c)).pays_launch = false; }

  // This graph repeated `copies` times side by side (data-parallel replicas): copy c's ranks are
  // c * ranks() .. (c + 1) * ranks() - 1, its ops and collectives are the originals shifted; no op of one copy
  // depends on another. Notes and received counts are kept once (they describe one replica).
  OpGraph replicate(int copies) const;

  // Figures a schedule computes while building (e.g. EPLB's extra weight bytes per rank), copied into the
  // variant's `extra` metrics. note_max keeps the largest value over appended steps, note_sum adds them up.
  void note_max(const std::string& key, double v);
  void note_sum(const std::string& key, double v);
  const std::map<std::string, std::pair<double, bool>>& notes() const { return notes_; }  // value, summed

  // Token-expert pairs (and vision pairs; empty when not multimodal) each rank receives in MoE layer `layer`
  // when the schedule routes them elsewhere than the routing plan's placement (EPLB's replicas). Reports use
  // these instead of the plan's. Keyed by (step, layer); append() moves next's entries to its step.
  struct Received {
    std::vector<int64_t> pairs, vision;
  };
  struct Chunk {
    Tail from;  // the graph state it was made for
    std::vector<Op> ops;
    std::vector<Collective> collectives;
    std::map<std::string, std::pair<double, bool>> notes;  // next's, merged in by append
    std::map<std::pair<int, int>, Received> received;      // keyed by (step, layer) already
    std::vector<int64_t> last;                             // last_ after it
  };
  void set_received(int layer, Received r) { received_[{0, layer}] = std::move(r); }
  const std::map<std::pair<int, int>, Received>& received() const { return received_; }

  // Sets the precision tag of an op (schedules that choose a precision per rank).
  void set_precision(OpId id, OpPrecision p) { ops_.at(id).precision = p; }

  // A readable label, e.g. "fwd L3 r5 dispatch" (chunk appended when set).
  std::string label(OpId id) const;

 private:
  OpId push(Op op);
  // One op per member for collective `c` (bytes already checked), recorded as the next collective.
  std::vector<OpId> push_collective(Collective c, const std::vector<int>& members, Stream stream, OpClass cls,
                                    Phase phase, int layer, const std::vector<std::vector<OpId>>& deps_per_rank,
                                    int chunk);
  int ranks_;
  std::vector<Op> ops_;
  std::vector<Collective> collectives_;
  std::vector<int64_t> last_;  // per (rank, stream)
  std::map<std::string, std::pair<double, bool>> notes_;
  std::map<std::pair<int, int>, Received> received_;
};

}  // namespace moesim
