#include "sim/op_graph.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>
#include <tuple>

namespace moesim {

const char* provenance_name(Provenance p) {
  switch (p) {
    case Provenance::measured: return "measured";
    case Provenance::fitted: return "fitted";
    case Provenance::derived: return "derived";
    case Provenance::datasheet: return "datasheet";
    case Provenance::emergent: return "simulated";
  }
  return "?";
}

const char* op_class_name(OpClass c) {
  switch (c) {
    case OpClass::attention: return "attention";
    case OpClass::gate: return "gate";
    case OpClass::permute: return "permute";
    case OpClass::dispatch: return "dispatch";
    case OpClass::expert: return "expert";
    case OpClass::combine: return "combine";
    case OpClass::unpermute: return "unpermute";
    case OpClass::shared_expert: return "shared_expert";
    case OpClass::dense_mlp: return "dense_mlp";
    case OpClass::cast: return "cast";
    case OpClass::other: return "other";
    case OpClass::weight_move: return "weight_move";
    case OpClass::expert_all_gather: return "expert_all_gather";
    case OpClass::expert_reduce_scatter: return "expert_reduce_scatter";
    case OpClass::embedding: return "embedding";
    case OpClass::norm: return "norm";
    case OpClass::residual: return "residual";
    case OpClass::lm_head: return "lm_head";
    case OpClass::loss: return "loss";
    case OpClass::optimizer: return "optimizer";
    case OpClass::dp_all_reduce: return "dp_all_reduce";
    case OpClass::patch_merge: return "patch_merge";
  }
  return "?";
}

bool is_step_level(OpClass c, int layer) {
  switch (c) {
    case OpClass::embedding: case OpClass::lm_head: case OpClass::loss: case OpClass::optimizer:
    case OpClass::dp_all_reduce:
      return true;
    case OpClass::norm: return layer < 0;  // the final norm before the LM head
    default: return false;
  }
}

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::compute: return "compute";
    case OpKind::all_to_all: return "all_to_all";
    case OpKind::all_gather: return "all_gather";
    case OpKind::reduce_scatter: return "reduce_scatter";
  }
  return "?";
}

const char* op_precision_name(OpPrecision p) {
  switch (p) {
    case OpPrecision::model: return "model";
    case OpPrecision::bf16: return "bf16";
    case OpPrecision::fp8: return "fp8";
    case OpPrecision::fp4: return "fp4";
  }
  return "?";
}

void OpGraph::note_max(const std::string& key, double v) {
  auto [it, fresh] = notes_.try_emplace(key, v, false);
  if (!fresh) it->second.first = std::max(it->second.first, v);
}

void OpGraph::note_sum(const std::string& key, double v) {
  auto [it, fresh] = notes_.try_emplace(key, v, true);
  if (!fresh) it->second.first += v;
}

void OpGraph::append(const OpGraph& next, int step) {
  Tail at = tail();
  append(chunk(next, step, at));
}

OpGraph::Chunk OpGraph::chunk(const OpGraph& next, int step, Tail& at) {
  if (next.last_.size() != at.last.size()) throw std::invalid_argument("OpGraph::append: rank counts differ");
  Chunk c;
  c.from = at;
  c.notes = next.notes_;
  for (const auto& [key, r] : next.received_) c.received[{step, key.second}] = r;
  const OpId base = at.ops;
  const int32_t cbase = static_cast<int32_t>(at.collectives);
  const int32_t ranks = static_cast<int32_t>(at.last.size() / kStreams);
  std::vector<int64_t>& last = at.last;
  // The last op of each rank before the append (either stream), for the first op of each (rank, stream).
  const std::vector<int64_t> before = last;
  std::vector<bool> started(last.size(), false);
  c.ops.reserve(next.ops_.size());
  for (const Op& o : next.ops_) {
    Op op = o;
    op.step = step;
    if (op.collective >= 0) op.collective += cbase;
    op.deps.clear();
    // next's own stream predecessor is re-added below (as push() does); keep its other deps, shifted.
    const std::size_t slot = static_cast<std::size_t>(o.rank) * kStreams + static_cast<std::size_t>(o.stream);
    for (OpId d : o.deps) {
      const Op& dep = next.ops_[d];
      const bool stream_pred = dep.rank == o.rank && dep.stream == o.stream && started[slot] &&
                               static_cast<int64_t>(d) + base == last[slot];
      if (!stream_pred) op.deps.push_back(d + base);
    }
    if (!started[slot]) {
      started[slot] = true;
      for (int st = 0; st < kStreams; ++st) {
        const std::size_t other_slot = static_cast<std::size_t>(o.rank) * kStreams + static_cast<std::size_t>(st);
        const int64_t other = before[other_slot];
        if (other_slot != slot && other >= 0) op.deps.push_back(static_cast<OpId>(other));
      }
    }
    // What push() does, against the state `at`.
    op.id = base + static_cast<OpId>(c.ops.size());
    if (op.rank < 0 || op.rank >= ranks) throw std::out_of_range("op rank out of range");
    if (!(op.duration_s >= 0.0)) throw std::invalid_argument("op duration must be >= 0");
    for (OpId d : op.deps)
      if (d >= op.id) throw std::invalid_argument("op dep must refer to an earlier op");
    if (last[slot] >= 0) op.deps.push_back(static_cast<OpId>(last[slot]));
    last[slot] = op.id;
    c.ops.push_back(std::move(op));
  }
  c.collectives.reserve(next.collectives_.size());
  for (const Collective& col : next.collectives_) {
    Collective copy = col;
    for (OpId& id : copy.ops) id += base;
    c.collectives.push_back(std::move(copy));
  }
  at.ops += static_cast<OpId>(c.ops.size());
  at.collectives += c.collectives.size();
  c.last = last;
  return c;
}

void OpGraph::append(Chunk&& c) {
  if (c.from.ops != ops_.size() || c.from.collectives != collectives_.size() || c.from.last != last_)
    throw std::logic_error("OpGraph::append: a chunk made for another state of the graph");
  for (const auto& [k, v] : c.notes) v.second ? note_sum(k, v.first) : note_max(k, v.first);
  for (auto& [key, r] : c.received) received_[key] = std::move(r);
  // Geometric growth: an exact reserve per append would copy the whole graph at every step (quadratic).
  if (ops_.capacity() < ops_.size() + c.ops.size())
    ops_.reserve(std::max(ops_.size() + c.ops.size(), 2 * ops_.capacity()));
  for (Op& op : c.ops) ops_.push_back(std::move(op));
  for (Collective& col : c.collectives) collectives_.push_back(std::move(col));
  last_ = std::move(c.last);
}

OpGraph OpGraph::replicate(int copies) const {
  if (copies < 1) throw std::invalid_argument("OpGraph::replicate: at least one copy");
  OpGraph g(ranks_ * copies);
  g.notes_ = notes_;
  g.received_ = received_;
  g.ops_.reserve(ops_.size() * static_cast<std::size_t>(copies));
  for (int c = 0; c < copies; ++c) {
    const OpId base = static_cast<OpId>(ops_.size()) * static_cast<OpId>(c);
    const int32_t cbase = static_cast<int32_t>(collectives_.size()) * c;
    const int32_t rbase = ranks_ * c;
    for (const Op& o : ops_) {
      Op op = o;
      op.id = o.id + base;
      op.rank = o.rank + rbase;
      if (op.collective >= 0) op.collective += cbase;
      for (OpId& d : op.deps) d += base;  // the stream predecessor is among them already
      g.ops_.push_back(std::move(op));
    }
    for (const Collective& col : collectives_) {
      Collective copy = col;
      for (int32_t& m : copy.members) m += rbase;
      for (OpId& id : copy.ops) id += base;
      g.collectives_.push_back(std::move(copy));
    }
    for (std::size_t i = 0; i < last_.size(); ++i)
      g.last_[static_cast<std::size_t>(rbase) * kStreams + i] = last_[i] < 0 ? -1 : last_[i] + base;
  }
  return g;
}

OpGraph::OpGraph(int ranks) : ranks_(ranks), last_(static_cast<std::size_t>(ranks) * kStreams, -1) {
  if (ranks <= 0) throw std::invalid_argument("OpGraph needs at least one rank");
}

OpId OpGraph::push(Op op) {
  op.id = static_cast<OpId>(ops_.size());
  if (op.rank < 0 || op.rank >= ranks_) throw std::out_of_range("op rank out of range");
  if (!(op.duration_s >= 0.0)) throw std::invalid_argument("op duration must be >= 0");
  for (OpId d : op.deps)
    if (d >= op.id) throw std::invalid_argument("op dep must refer to an earlier op");
  int64_t& last = last_[static_cast<std::size_t>(op.rank) * kStreams + static_cast<std::size_t>(op.stream)];
  if (last >= 0) op.deps.push_back(static_cast<OpId>(last));
  last = op.id;
  ops_.push_back(std::move(op));
  return ops_.back().id;
}

OpId OpGraph::add_compute(int rank, Stream stream, OpClass cls, Phase phase, int layer, double duration_s,
                          Provenance prov, std::vector<OpId> deps, int chunk) {
  Op op;
  op.kind = OpKind::compute;
  op.cls = cls;
  op.stream = stream;
  op.phase = phase;
  op.provenance = prov;
  op.rank = rank;
  op.layer = layer;
  op.chunk = chunk;
  op.duration_s = duration_s;
  op.deps = std::move(deps);
  return push(std::move(op));
}

std::vector<OpId> OpGraph::add_all_to_all(Stream stream, OpClass cls, Phase phase, int layer,
                                          ByteMatrix bytes,
                                          const std::vector<std::vector<OpId>>& deps_per_rank, int chunk) {
  std::vector<int> all(static_cast<std::size_t>(ranks_));
  for (int r = 0; r < ranks_; ++r) all[static_cast<std::size_t>(r)] = r;
  return add_collective(OpKind::all_to_all, std::move(all), stream, cls, phase, layer, std::move(bytes),
                        deps_per_rank, chunk);
}

namespace {
void check_members(const std::vector<int>& members, int ranks) {
  if (members.empty()) throw std::invalid_argument("collective without members");
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (members[i] < 0 || members[i] >= ranks) throw std::out_of_range("collective member out of range");
    if (i > 0 && members[i] <= members[i - 1]) throw std::invalid_argument("collective members must ascend");
  }
}
}  // namespace

std::vector<OpId> OpGraph::add_collective(OpKind kind, std::vector<int> members, Stream stream, OpClass cls,
                                          Phase phase, int layer, ByteMatrix bytes,
                                          const std::vector<std::vector<OpId>>& deps_per_rank, int chunk) {
  if (kind == OpKind::compute) throw std::invalid_argument("add_collective: a compute op is not a collective");
  check_members(members, ranks_);
  const std::size_t M = members.size();
  if (bytes.size() != M * M) throw std::invalid_argument("collective byte matrix must be members x members");
  for (double b : bytes.values())
    if (!(b >= 0.0)) throw std::invalid_argument("collective bytes must be >= 0");
  Collective c;
  c.kind = kind;
  c.bytes = std::move(bytes);
  return push_collective(std::move(c), members, stream, cls, phase, layer, deps_per_rank, chunk);
}

std::vector<OpId> OpGraph::add_collective(OpKind kind, std::vector<int> members, Stream stream, OpClass cls,
                                          Phase phase, int layer, std::vector<Transfer> transfers,
                                          const std::vector<std::vector<OpId>>& deps_per_rank, int chunk) {
  if (kind == OpKind::compute) throw std::invalid_argument("add_collective: a compute op is not a collective");
  check_members(members, ranks_);
  const auto M = static_cast<int32_t>(members.size());
  std::erase_if(transfers, [](const Transfer& t) { return t.bytes == 0.0; });
  for (const Transfer& t : transfers) {
    if (t.src < 0 || t.src >= M || t.dst < 0 || t.dst >= M || t.src == t.dst)
      throw std::invalid_argument("collective transfer between member indices out of range or to itself");
    if (!(t.bytes >= 0.0)) throw std::invalid_argument("collective bytes must be >= 0");
  }
  std::sort(transfers.begin(), transfers.end(),
            [](const Transfer& a, const Transfer& b) { return std::tie(a.src, a.dst) < std::tie(b.src, b.dst); });
  for (std::size_t i = 1; i < transfers.size(); ++i)
    if (transfers[i].src == transfers[i - 1].src && transfers[i].dst == transfers[i - 1].dst)
      throw std::invalid_argument("collective transfer listed twice");
  Collective c;
  c.kind = kind;
  c.transfers = std::move(transfers);
  return push_collective(std::move(c), members, stream, cls, phase, layer, deps_per_rank, chunk);
}

std::vector<OpId> OpGraph::push_collective(Collective c, const std::vector<int>& members, Stream stream, OpClass cls,
                                           Phase phase, int layer, const std::vector<std::vector<OpId>>& deps_per_rank,
                                           int chunk) {
  const OpKind kind = c.kind;
  std::vector<OpId> by_rank(static_cast<std::size_t>(ranks_), kNoOp);
  const int32_t cid = static_cast<int32_t>(collectives_.size());
  for (int r : members) {
    Op op;
    op.kind = kind;
    op.cls = cls;
    op.stream = stream;
    op.phase = phase;
    op.provenance = Provenance::emergent;
    op.rank = r;
    op.layer = layer;
    op.chunk = chunk;
    op.collective = cid;
    if (!deps_per_rank.empty()) op.deps = deps_per_rank.at(static_cast<std::size_t>(r));
    const OpId id = push(std::move(op));
    c.ops.push_back(id);
    by_rank[static_cast<std::size_t>(r)] = id;
  }
  c.members.assign(members.begin(), members.end());
  collectives_.push_back(std::move(c));
  return by_rank;
}

double Collective::bytes_between(int i, int j) const {
  if (i == j) return 0.0;
  if (!sparse()) return bytes[static_cast<std::size_t>(i) * members.size() + static_cast<std::size_t>(j)];
  const auto it = std::lower_bound(transfers.begin(), transfers.end(), std::pair<int, int>(i, j),
                                   [](const Transfer& t, const std::pair<int, int>& k) {
                                     return std::tie(t.src, t.dst) < std::tie(k.first, k.second);
                                   });
  return it != transfers.end() && it->src == i && it->dst == j ? it->bytes : 0.0;
}

int Collective::member_index(int rank) const {
  if (members.size() > static_cast<std::size_t>(rank) && members[static_cast<std::size_t>(rank)] == rank) return rank;
  const auto it = std::lower_bound(members.begin(), members.end(), rank);
  return it != members.end() && *it == rank ? static_cast<int>(it - members.begin()) : -1;
}

std::string OpGraph::label(OpId id) const {
  const Op& o = ops_[id];
  std::string s = fmt::format("{} L{} r{} {}", o.phase == Phase::forward ? "fwd" : "bwd", o.layer, o.rank,
                              op_class_name(o.cls));
  if (o.chunk >= 0) s += fmt::format(" c{}", o.chunk);
  return s;
}

}  // namespace moesim
