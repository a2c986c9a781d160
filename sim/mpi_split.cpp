// The MPI-free half of sim/mpi_split.hpp: the launcher's environment and the gather's wire format (in moesim_sim,
// so tests link it without MPI). MpiSession and mpi_compiled() are in sim/mpi_session.cpp, compiled into the
// moesim executable only, with MPI when CMake found it.
#include "sim/mpi_split.hpp"

#include <cstdlib>
#include <fmt/format.h>

namespace moesim {

namespace {

// A non-negative decimal integer below 2^31, or nullopt.
std::optional<int> small_int(const char* s) {
  if (!s || !*s) return std::nullopt;
  long v = 0;
  for (const char* c = s; *c; ++c) {
    if (*c < '0' || *c > '9') return std::nullopt;
    v = v * 10 + (*c - '0');
    if (v > 0x7fffffffL) return std::nullopt;
  }
  return static_cast<int>(v);
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get_u64(const std::string& in, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

}  // namespace

MpiWorld mpi_world_from_env(const EnvLookup& env) {
  const EnvLookup get = env ? env : EnvLookup([](const char* n) -> const char* { return std::getenv(n); });
  for (const auto& [rank_var, size_var] : {std::pair{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                           std::pair{"PMI_RANK", "PMI_SIZE"}}) {
    const char* r = get(rank_var);
    const char* s = get(size_var);
    if (!r && !s) continue;
    const std::optional<int> rank = small_int(r), size = small_int(s);
    if (!rank || !size || *size < 1 || *rank >= *size)
      throw std::invalid_argument(fmt::format("the MPI launcher's environment is inconsistent: {}={}, {}={} (expected "
                                              "0 <= rank < size)",
                                              rank_var, r ? r : "(unset)", size_var, s ? s : "(unset)"));
    MpiWorld w;
    w.rank = *rank;
    w.size = *size;
    if (w.size > 1) w.source = fmt::format("{}/{}", rank_var, size_var);
    return w;
  }
  return {};
}

std::string mpi_encode_items(const std::map<std::size_t, std::string>& items) {
  std::string out;
  for (const auto& [i, bytes] : items) {
    put_u64(out, i);
    put_u64(out, bytes.size());
    out += bytes;
  }
  return out;
}

std::map<std::size_t, std::string> mpi_decode_items(const std::string& bytes) {
  std::map<std::size_t, std::string> out;
  std::size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 16) throw std::runtime_error("MPI gather: truncated item header");
    const std::uint64_t index = get_u64(bytes, at), len = get_u64(bytes, at + 8);
    at += 16;
    if (len > bytes.size() - at) throw std::runtime_error("MPI gather: truncated item");
    out[static_cast<std::size_t>(index)] = bytes.substr(at, static_cast<std::size_t>(len));
    at += static_cast<std::size_t>(len);
  }
  return out;
}

}  // namespace moesim
