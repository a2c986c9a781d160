#include "sim/op_graph.hpp"

#include <fmt/format.h>
#include <stdexcept>

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
  }
  return "?";
}

OpGraph::OpGraph(int ranks) : ranks_(ranks), last_(static_cast<std::size_t>(ranks) * 2, -1) {
  if (ranks <= 0) throw std::invalid_argument("OpGraph needs at least one rank");
}

OpId OpGraph::push(Op op) {
  op.id = static_cast<OpId>(ops_.size());
  if (op.rank < 0 || op.rank >= ranks_) throw std::out_of_range("op rank out of range");
  if (!(op.duration_s >= 0.0)) throw std::invalid_argument("op duration must be >= 0");
  for (OpId d : op.deps)
    if (d >= op.id) throw std::invalid_argument("op dep must refer to an earlier op");
  int64_t& last = last_[op.rank * 2 + static_cast<int>(op.stream)];
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
                                          std::vector<double> bytes,
                                          const std::vector<std::vector<OpId>>& deps_per_rank, int chunk) {
  if (bytes.size() != static_cast<std::size_t>(ranks_) * ranks_)
    throw std::invalid_argument("all-to-all byte matrix must be ranks x ranks");
  for (double b : bytes)
    if (!(b >= 0.0)) throw std::invalid_argument("all-to-all bytes must be >= 0");
  Collective c;
  c.ranks = ranks_;
  c.bytes = std::move(bytes);
  const int32_t cid = static_cast<int32_t>(collectives_.size());
  for (int r = 0; r < ranks_; ++r) {
    Op op;
    op.kind = OpKind::all_to_all;
    op.cls = cls;
    op.stream = stream;
    op.phase = phase;
    op.provenance = Provenance::emergent;
    op.rank = r;
    op.layer = layer;
    op.chunk = chunk;
    op.collective = cid;
    if (!deps_per_rank.empty()) op.deps = deps_per_rank.at(static_cast<std::size_t>(r));
    c.ops.push_back(push(std::move(op)));
  }
  collectives_.push_back(std::move(c));
  return collectives_.back().ops;
}

std::string OpGraph::label(OpId id) const {
  const Op& o = ops_[id];
  std::string s = fmt::format("{} L{} r{} {}", o.phase == Phase::forward ? "fwd" : "bwd", o.layer, o.rank,
                              op_class_name(o.cls));
  if (o.chunk >= 0) s += fmt::format(" c{}", o.chunk);
  return s;
}

}  // namespace moesim
