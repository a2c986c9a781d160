// moesim-calibrate: CUDA microbenchmarks of the kernels an expert-parallel MoE step runs. Writes the raw
// YAML described in calibrate/README.md, rewritten after every section so a killed run keeps what it
// measured. `--dry-run` prints the plan without touching a GPU.
//
// One translation unit on purpose: nvcc is slow, and the lent GPU machine builds it with a plain nvcc line.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#if MOESIM_HAVE_NCCL
#include <nccl.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/plan.hpp"
#include "common/raw_format.hpp"

#ifndef MOESIM_GIT_SHA
#define MOESIM_GIT_SHA "unknown"
#endif

namespace mc = moesim::calibrate;
using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

namespace {

// ---- errors ---------------------------------------------------------------------------------------------

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A cuBLAS(Lt) call that failed: callers record the shape/mode as unsupported instead of aborting.
struct BlasError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check_cuda(cudaError_t e, const char* what, int line) {
  if (e != cudaSuccess) {
    throw CudaError(std::string(what) + " (line " + std::to_string(line) + "): " + cudaGetErrorString(e));
  }
}
void check_blas(cublasStatus_t s, const char* what, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw BlasError(std::string(what) + " (line " + std::to_string(line) + "): status " + std::to_string(int(s)));
  }
}
#define CK(x) check_cuda((x), #x, __LINE__)
#define CB(x) check_blas((x), #x, __LINE__)

// ---- kernels --------------------------------------------------------------------------------------------

__device__ __forceinline__ uint64_t mix64(uint64_t x) {  // splitmix64 finaliser: cheap, well spread
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ float uniform_pm1(uint64_t i, uint64_t seed) {  // in [-1, 1)
  return static_cast<float>(mix64(i ^ (seed * 0x2545f4914f6cdd1dull)) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

template <class T>
__global__ void fill_random(T* p, size_t n, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    p[i] = T(uniform_pm1(i, seed) * scale);
  }
}
__global__ void fill_value(float* p, size_t n, float v) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) p[i] = v;
}
__global__ void fill_index(int* p, size_t n, uint32_t modulo, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    p[i] = static_cast<int>(mix64(i ^ seed) % modulo);
  }
}

// bf16 -> fp8 e4m3, one fp32 scale per 1x128 group (activations): one warp per group, 4 elements a lane.
__global__ void cast_fp8_1x128(const bf16* in, fp8* out, float* scales, long long groups) {
  const long long g = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (g >= groups) return;  // whole warps leave together, so the shuffles below stay full-warp
  const __nv_bfloat162* src = reinterpret_cast<const __nv_bfloat162*>(in + g * 128) + lane * 2;
  const float2 a = __bfloat1622float2(src[0]);
  const float2 b = __bfloat1622float2(src[1]);
  float m = fmaxf(fmaxf(fabsf(a.x), fabsf(a.y)), fmaxf(fabsf(b.x), fabsf(b.y)));
  for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  const float s = m > 0 ? m / 448.0f : 1.0f;  // 448: largest e4m3 value
  const float inv = 1.0f / s;
  reinterpret_cast<__nv_fp8x4_e4m3*>(out + g * 128)[lane] =
      __nv_fp8x4_e4m3(make_float4(a.x * inv, a.y * inv, b.x * inv, b.y * inv));
  if (lane == 0) scales[g] = s;
}

// bf16 -> fp8 e4m3, one scale per 128x128 tile (weights): one 256-thread block per tile, two passes
// (amax, then scale and write; the second read hits L2).
__global__ void cast_fp8_128x128(const bf16* in, fp8* out, float* scales, long long rows, int k) {
  const int tiles_k = k / 128;
  const long long tr = blockIdx.x / tiles_k;
  const int tc = blockIdx.x % tiles_k;
  __shared__ float warp_max[8];
  float m = 0;
  for (int idx = threadIdx.x; idx < 128 * 64; idx += blockDim.x) {  // 64 bf16 pairs per tile row
    const long long r = tr * 128 + idx / 64;
    if (r >= rows) break;
    const float2 v = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(in + r * k + tc * 128)[idx % 64]);
    m = fmaxf(m, fmaxf(fabsf(v.x), fabsf(v.y)));
  }
  for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  m = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, warp_max[w]);
  const float s = m > 0 ? m / 448.0f : 1.0f;
  const float inv = 1.0f / s;
  for (int idx = threadIdx.x; idx < 128 * 64; idx += blockDim.x) {
    const long long r = tr * 128 + idx / 64;
    if (r >= rows) break;
    const float2 v = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(in + r * k + tc * 128)[idx % 64]);
    reinterpret_cast<__nv_fp8x2_e4m3*>(out + r * k + tc * 128)[idx % 64] = __nv_fp8x2_e4m3(make_float2(v.x * inv, v.y * inv));
  }
  if (threadIdx.x == 0) scales[blockIdx.x] = s;
}

// Gather rows into expert order: out[r] = in[src[r]]; one block per row, 16-byte chunks (k % 8 == 0).
__global__ void permute_rows(const bf16* in, bf16* out, const int* src, int k) {
  const long long r = blockIdx.x;
  const uint4* s = reinterpret_cast<const uint4*>(in + static_cast<long long>(src[r]) * k);
  uint4* d = reinterpret_cast<uint4*>(out + r * k);
  for (int c = threadIdx.x; c < k / 8; c += blockDim.x) d[c] = s[c];
}

// Combine: out[t] = sum_j w[t*topk+j] * in[pos[t*topk+j]], fp32 accumulation; one block per token.
__global__ void unpermute_rows(const bf16* in, bf16* out, const int* pos, const float* w, int topk, int k) {
  const long long t = blockIdx.x;
  for (int c = threadIdx.x; c < k / 8; c += blockDim.x) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < topk; ++j) {
      const long long p = pos[t * topk + j];
      const float wj = w[t * topk + j];
      const uint4 raw = reinterpret_cast<const uint4*>(in + p * k)[c];
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
      for (int q = 0; q < 4; ++q) {
        const float2 f = __bfloat1622float2(h[q]);
        acc[2 * q] += wj * f.x;
        acc[2 * q + 1] += wj * f.y;
      }
    }
    uint4 o;
    __nv_bfloat162* oh = reinterpret_cast<__nv_bfloat162*>(&o);
    for (int q = 0; q < 4; ++q) oh[q] = __floats2bfloat162_rn(acc[2 * q], acc[2 * q + 1]);
    reinterpret_cast<uint4*>(out + t * k)[c] = o;
  }
}

// SwiGLU: in row = [gate (f) | up (f)], out = silu(gate) * up.
__global__ void swiglu(const bf16* in, bf16* out, long long tokens, int f) {
  const long long half = f / 2;
  const long long n = tokens * half;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long row = i / half, c = i % half;
    const __nv_bfloat162* r = reinterpret_cast<const __nv_bfloat162*>(in + row * 2 * f);
    const float2 g = __bfloat1622float2(r[c]);
    const float2 u = __bfloat1622float2(r[half + c]);
    const float sx = g.x / (1.0f + __expf(-g.x)), sy = g.y / (1.0f + __expf(-g.y));
    reinterpret_cast<__nv_bfloat162*>(out + row * f)[c] = __floats2bfloat162_rn(sx * u.x, sy * u.y);
  }
}

// Router: top-k of E logits per token (E <= 256, k <= 8), softmax over the chosen; one warp per token.
__global__ void router_topk(const bf16* logits, int* idx_out, float* w_out, long long tokens, int e, int topk) {
  const long long t = (blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (t >= tokens) return;
  float v[8];
  for (int j = 0; j < 8; ++j) {
    const int c = lane + 32 * j;
    v[j] = c < e ? __bfloat162float(logits[t * e + c]) : -INFINITY;
  }
  float chosen_v[8];
  int chosen_i[8];
  for (int s = 0; s < topk; ++s) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int j = 0; j < 8; ++j) {
      if (v[j] > bv) {
        bv = v[j];
        bi = lane + 32 * j;
      }
    }
    for (int o = 16; o; o >>= 1) {  // argmax across the warp; ties go to the lower expert id
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) {
        bv = ov;
        bi = oi;
      }
    }
    chosen_v[s] = bv;
    chosen_i[s] = bi;
    if (bi % 32 == lane) v[bi / 32] = -INFINITY;
  }
  if (lane == 0) {
    float sum = 0;
    for (int s = 0; s < topk; ++s) sum += __expf(chosen_v[s] - chosen_v[0]);
    for (int s = 0; s < topk; ++s) {
      idx_out[t * topk + s] = chosen_i[s];
      w_out[t * topk + s] = __expf(chosen_v[s] - chosen_v[0]) / sum;
    }
  }
}

__global__ void copy_kernel(const uint4* src, uint4* dst, size_t n16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n16; i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}
__global__ void empty_kernel() {}

// Holds its SMs copying memory (like a communication kernel) until *stop is set or max_ns passes.
__global__ void spin_copy(const uint4* src, uint4* dst, size_t n16, volatile int* stop, int* started, uint64_t max_ns) {
  if (threadIdx.x == 0) atomicAdd(started, 1);
  const uint64_t t0 = global_ns();
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  for (unsigned it = 1;; ++it) {
    dst[i] = src[i];
    i += stride;
    if (i >= n16) i -= n16;
    if ((it & 255u) == 0 && (*stop || global_ns() - t0 > max_ns)) break;
  }
}
__global__ void wait_started(volatile int* started, int want, uint64_t max_ns) {
  const uint64_t t0 = global_ns();
  while (*started < want && global_ns() - t0 < max_ns) {
  }
}
__global__ void set_flag(int* flag) {
  *reinterpret_cast<volatile int*>(flag) = 1;
  __threadfence_system();
}

// SM clock under load: every SM spins on FMAs for spin_ns; block 0 reports clock64 cycles and ns.
__global__ void clock_probe(uint64_t spin_ns, unsigned long long* out, float* sink) {
  const uint64_t t0 = global_ns();
  const long long c0 = clock64();
  float x = threadIdx.x * 1e-3f, y = 1.0001f;
  while (global_ns() - t0 < spin_ns) {
    for (int i = 0; i < 64; ++i) x = fmaf(x, y, 1e-7f);
  }
  const long long c1 = clock64();
  const uint64_t t1 = global_ns();
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    out[0] = static_cast<unsigned long long>(c1 - c0);
    out[1] = t1 - t0;
  }
  if (x == 12345.0f) sink[0] = x;  // keeps the loop alive
}

// ---- host helpers ---------------------------------------------------------------------------------------

class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t bytes) : bytes_(bytes) { CK(cudaMalloc(&p_, std::max<size_t>(bytes, 256))); }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = o.p_;
      bytes_ = o.bytes_;
      o.p_ = nullptr;
    }
    return *this;
  }
  template <class T = void>
  T* get() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

constexpr int kFillBlocks = 1024, kFillThreads = 256;

template <class T>
void fill(T* p, size_t n, uint64_t seed, float scale, cudaStream_t s) {
  fill_random<T><<<kFillBlocks, kFillThreads, 0, s>>>(p, n, seed, scale);
  CK(cudaGetLastError());
}

// One arena, many equal slots: executions rotate through slots so consecutive kernels touch memory not
// in L2 (the arena is at least 2x L2, or two slots).
struct Arena {
  DevBuf buf;
  size_t slot_bytes = 0;
  int slots = 1;
  Arena(size_t slot, size_t l2, int max_slots) {
    slot_bytes = (std::max<size_t>(slot, 1) + 255) / 256 * 256;
    const size_t want = (2 * l2 + slot_bytes - 1) / slot_bytes;
    slots = static_cast<int>(std::clamp<size_t>(want, 2, static_cast<size_t>(max_slots)));
    buf = DevBuf(slot_bytes * slots);
  }
  template <class T>
  T* slot(int i) const {
    return reinterpret_cast<T*>(buf.get<char>() + (static_cast<size_t>(i) % slots) * slot_bytes);
  }
  // Execution i of a kernel touching `bytes`: consecutive windows of that size across the whole arena, so
  // small executions also sweep more than L2 before reusing memory (given enough executions).
  template <class T>
  T* at(int i, size_t bytes) const {
    const size_t rb = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
    const size_t windows = std::max<size_t>(buf.bytes() / rb, 1);
    return reinterpret_cast<T*>(buf.get<char>() + (static_cast<size_t>(i) % windows) * rb);
  }
};

using Clock = std::chrono::steady_clock;

struct Ctx {
  int dev = 0;
  cudaDeviceProp prop{};
  int sms = 0;
  size_t l2 = 0;
  cudaStream_t s = nullptr;
  cudaEvent_t ev_a = nullptr, ev_b = nullptr;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  DevBuf workspace;
  size_t ws_bytes = 64ull << 20;
  mc::Plan plan;
  mc::RawRun run;
  std::string out_path;
  Clock::time_point t0;
  double section_deadline_s = 1e30;
  DevBuf clock_buf, sink;

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - t0).count(); }
  bool out_of_time() const { return elapsed() >= std::min(plan.budget_s, section_deadline_s); }
  void save() {
    run.elapsed_s = elapsed();
    mc::write_file_atomic(out_path, mc::to_yaml(run));
  }
};

double event_seconds(Ctx& c) {
  float ms = 0;
  CK(cudaEventSynchronize(c.ev_b));
  CK(cudaEventElapsedTime(&ms, c.ev_a, c.ev_b));
  return ms * 1e-3;
}

// Captures `inner` executions (enqueue(stream, i), i = 0..inner-1) in one CUDA graph, then times graph
// replays with CUDA events: each sample replays it enough times to last >= min_sample_s; the point is the
// median over the plan's samples, per execution.
mc::RawPoint time_graph(Ctx& c, double x, int inner, const std::function<void(cudaStream_t, int)>& enqueue) {
  cudaGraph_t g = nullptr;
  CK(cudaStreamBeginCapture(c.s, cudaStreamCaptureModeThreadLocal));
  try {
    for (int i = 0; i < inner; ++i) enqueue(c.s, i);
  } catch (...) {
    cudaStreamEndCapture(c.s, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
    throw;
  }
  CK(cudaStreamEndCapture(c.s, &g));
  cudaGraphExec_t ge = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&ge, g, 0);
  cudaGraphDestroy(g);
  CK(inst);
  std::unique_ptr<CUgraphExec_st, decltype(&cudaGraphExecDestroy)> guard(ge, &cudaGraphExecDestroy);
  CK(cudaGraphLaunch(ge, c.s));  // warm-up (first replay uploads the graph)
  CK(cudaStreamSynchronize(c.s));
  CK(cudaEventRecord(c.ev_a, c.s));
  CK(cudaGraphLaunch(ge, c.s));
  CK(cudaEventRecord(c.ev_b, c.s));
  const double pilot = std::max(event_seconds(c), 1e-7);
  const int reps = static_cast<int>(std::clamp(std::ceil(c.plan.min_sample_s / pilot), 1.0, 100000.0));
  std::vector<double> samples;
  for (int s = 0; s < c.plan.samples; ++s) {
    CK(cudaEventRecord(c.ev_a, c.s));
    for (int r = 0; r < reps; ++r) CK(cudaGraphLaunch(ge, c.s));
    CK(cudaEventRecord(c.ev_b, c.s));
    samples.push_back(event_seconds(c) / (static_cast<double>(reps) * inner));
  }
  std::sort(samples.begin(), samples.end());
  const size_t h = samples.size() / 2;
  const double med = samples.size() % 2 ? samples[h] : (samples[h - 1] + samples[h]) / 2;
  return mc::RawPoint{x, med, samples.front(), samples.back(), static_cast<int>(samples.size())};
}

// ---- cuBLASLt GEMM: D (m x tokens) = op(A = weights)^T . B (activations), "TN", column-major -------------

struct LtGemm {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  LtGemm() = default;
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  ~LtGemm() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Scale tensors shared by every fp8 GEMM (all ones; data is random in [-1, 1)): sized for the largest
// block-scaled operand of the plan.
struct Scales {
  DevBuf a, b;
};

bool is_fp8(const std::string& dtype) { return dtype.rfind("fp8", 0) == 0; }

// Sets up one GEMM shape; throws BlasError (recorded as unsupported) when cuBLASLt has no algorithm.
void make_gemm(Ctx& c, LtGemm& g, const std::string& dtype, long long m, long long n, long long k, const Scales& sc) {
  const bool f8 = is_fp8(dtype);
  const cudaDataType_t ab = f8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  CB(cublasLtMatmulDescCreate(&g.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CB(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  CB(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (f8) {
    const void* ap = sc.a.get();
    const void* bp = sc.b.get();
    CB(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ap, sizeof ap));
    CB(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bp, sizeof bp));
    if (dtype != "fp8_tensor") {
#if CUBLAS_VERSION >= 120900
      // fp8_block_1x128: both operands scaled per 1x128 block along k; fp8_block_128x128: weights per
      // 128x128 tile, activations per 1x128 (the DeepSeek-V3 recipe).
      const int32_t amode = dtype == "fp8_block_128x128" ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                                                          : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
      const int32_t bmode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
      CB(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode));
      CB(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode));
#else
      throw BlasError("this cuBLASLt (< 12.9) has no block-scaling modes");
#endif
    }
  }
  CB(cublasLtMatrixLayoutCreate(&g.a, ab, k, m, k));   // weights stored k x m (col-major), used transposed
  CB(cublasLtMatrixLayoutCreate(&g.b, ab, k, n, k));   // activations: k x tokens
  CB(cublasLtMatrixLayoutCreate(&g.d, CUDA_R_16BF, m, n, m));
  cublasLtMatmulPreference_t pref = nullptr;
  CB(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &c.ws_bytes, sizeof c.ws_bytes);
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = cublasLtMatmulAlgoGetHeuristic(c.lt, g.op, g.a, g.b, g.d, g.d, pref, 1, &res, &found);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    throw BlasError("no cuBLASLt algorithm (heuristic status " + std::to_string(int(st)) + ", found " +
                    std::to_string(found) + ")");
  }
  g.algo = res.algo;
}

void run_gemm(Ctx& c, const LtGemm& g, const void* w, const void* x, void* y, cudaStream_t s) {
  const float alpha = 1.0f, beta = 0.0f;
  CB(cublasLtMatmul(c.lt, g.op, &alpha, w, g.a, x, g.b, &beta, y, g.d, y, g.d, &g.algo, c.workspace.get(),
                    c.ws_bytes, s));
}

size_t elem_bytes(const std::string& dtype) { return is_fp8(dtype) ? 1 : 2; }

// Weights, activations and outputs for one GEMM shape, in rotating arenas.
struct GemmBuffers {
  Arena w, x, y;
  GemmBuffers(Ctx& c, const std::string& dtype, long long m, long long k, long long max_tokens, int experts = 1)
      : w(elem_bytes(dtype) * m * k * experts, c.l2, 256),
        x(elem_bytes(dtype) * k * max_tokens, c.l2, 256),
        y(2ull * m * max_tokens, c.l2, 256) {
    const size_t ew = elem_bytes(dtype);
    if (ew == 1) {
      fill(w.buf.get<fp8>(), w.buf.bytes(), 1, 1.0f, c.s);
      fill(x.buf.get<fp8>(), x.buf.bytes(), 2, 1.0f, c.s);
    } else {
      fill(w.buf.get<bf16>(), w.buf.bytes() / 2, 1, 1.0f, c.s);
      fill(x.buf.get<bf16>(), x.buf.bytes() / 2, 2, 1.0f, c.s);
    }
    CK(cudaStreamSynchronize(c.s));
  }
};

Scales make_scales(Ctx& c) {
  // Largest block-scaled operand: 28672 x 16384 (Mixtral gate_up weights) or k x tokens; ceil(dim/128)
  // per block along each axis, padded: a generous 8M floats (32 MiB) each.
  Scales s{DevBuf(32ull << 20), DevBuf(32ull << 20)};
  fill_value<<<kFillBlocks, kFillThreads, 0, c.s>>>(s.a.get<float>(), (32ull << 20) / 4, 1.0f);
  fill_value<<<kFillBlocks, kFillThreads, 0, c.s>>>(s.b.get<float>(), (32ull << 20) / 4, 1.0f);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(c.s));
  return s;
}

// ---- sections -------------------------------------------------------------------------------------------

struct SectionResult {
  std::string status = "complete";
  std::string note;
};

double probe_clock_mhz(Ctx& c) {
  if (!c.clock_buf.get()) {
    c.clock_buf = DevBuf(16);
    c.sink = DevBuf(16);
  }
  clock_probe<<<c.sms, 128, 0, c.s>>>(20'000'000ull, c.clock_buf.get<unsigned long long>(), c.sink.get<float>());
  CK(cudaGetLastError());
  unsigned long long h[2] = {0, 0};
  CK(cudaMemcpyAsync(h, c.clock_buf.get(), sizeof h, cudaMemcpyDeviceToHost, c.s));
  CK(cudaStreamSynchronize(c.s));
  return h[1] ? static_cast<double>(h[0]) / static_cast<double>(h[1]) * 1e3 : 0;
}

struct Sentinel {
  std::unique_ptr<LtGemm> g;
  std::unique_ptr<GemmBuffers> buf;
};

void measure_sentinel(Ctx& c, Sentinel& sen, const std::string& after) {
  if (!sen.g) return;
  const mc::RawPoint p = time_graph(c, static_cast<double>(c.plan.sentinel_tokens), sen.buf->w.slots,
                                    [&](cudaStream_t s, int i) {
                                      run_gemm(c, *sen.g, sen.buf->w.slot<void>(i), sen.buf->x.slot<void>(i),
                                               sen.buf->y.slot<void>(i), s);
                                    });
  c.run.sentinel.push_back(mc::RawSentinel{after, c.elapsed(), p.median_s, probe_clock_mhz(c)});
}

mc::RawMeasurement gemm_measurement(const std::string& kernel, const std::string& dtype, const std::string& variant,
                                    long long m, long long k, int split, const std::vector<std::string>& models,
                                    int experts) {
  mc::RawMeasurement r;
  r.kernel = kernel;
  r.dtype = dtype;
  r.variant = variant;
  r.n = m;
  r.k = k;
  r.split = split;
  r.models = models;
  r.axis = "tokens";
  r.flops_per_unit = 2.0 * m * k;
  r.bytes_fixed = static_cast<double>(elem_bytes(dtype)) * m * k * experts;
  r.bytes_per_unit = static_cast<double>(elem_bytes(dtype)) * k + 2.0 * m;
  return r;
}

void record_unsupported(Ctx& c, const std::string& kernel, const std::string& dtype, long long n, long long k,
                        double x, const std::string& why) {
  c.run.unsupported.push_back(mc::RawUnsupported{kernel, dtype, n, k, x, why});
}

SectionResult section_expert_gemm(Ctx& c, const Scales& sc) {
  SectionResult res;
  const long long max_t = c.plan.gemm_tokens.back();
  for (const auto& shape : c.plan.gemm_shapes) {
    for (const auto& dtype : c.plan.gemm_dtypes) {
      if (c.out_of_time()) {
        res.status = "truncated";
        res.note = "budget ran out before " + shape.kernel + " n=" + std::to_string(shape.n) + " k=" +
                   std::to_string(shape.k) + " " + dtype;
        return res;
      }
      auto meas = gemm_measurement(shape.kernel, dtype, "cublaslt", shape.n, shape.k, shape.split, shape.models, 1);
      try {
        GemmBuffers buf(c, dtype, shape.n, shape.k, max_t);
        for (const long long t : c.plan.gemm_tokens) {
          if (c.out_of_time()) {
            res.status = "truncated";
            res.note = "budget ran out inside " + shape.kernel + " " + dtype;
            break;
          }
          try {
            LtGemm g;
            make_gemm(c, g, dtype, shape.n, t, shape.k, sc);
            run_gemm(c, g, buf.w.slot<void>(0), buf.x.slot<void>(0), buf.y.slot<void>(0), c.s);  // trial run
            CK(cudaStreamSynchronize(c.s));
            meas.points.push_back(time_graph(c, static_cast<double>(t), buf.w.slots, [&](cudaStream_t s, int i) {
              run_gemm(c, g, buf.w.slot<void>(i), buf.x.slot<void>(i), buf.y.slot<void>(i), s);
            }));
          } catch (const BlasError& e) {
            record_unsupported(c, shape.kernel, dtype, shape.n, shape.k, static_cast<double>(t), e.what());
          }
        }
      } catch (const CudaError& e) {
        record_unsupported(c, shape.kernel, dtype, shape.n, shape.k, -1, e.what());
        cudaGetLastError();
      }
      if (!meas.points.empty()) c.run.measurements.push_back(std::move(meas));
      c.save();
      if (res.status == "truncated") return res;
    }
  }
  return res;
}

// Token counts of `experts` experts summing to `total`, proportional to 1/(e+1)^s (uneven, like a skewed
// router); the rounding remainder goes to expert 0.
std::vector<long long> zipf_counts(long long total, int experts, double s) {
  std::vector<double> w(experts);
  double sum = 0;
  for (int e = 0; e < experts; ++e) sum += w[e] = 1.0 / std::pow(e + 1.0, s);
  std::vector<long long> n(experts);
  long long used = 0;
  for (int e = 0; e < experts; ++e) used += n[e] = static_cast<long long>(std::floor(total * w[e] / sum));
  n[0] += total - used;
  return n;
}

SectionResult section_grouped_gemm(Ctx& c, const Scales& sc) {
  SectionResult res;
  const int E = c.plan.grouped_experts;
  for (const auto& shape : c.plan.grouped_shapes) {
    struct Variant {
      const char* dtype;
      const char* name;
    };
    for (const Variant v : {Variant{"bf16", "lt_graph_loop"}, Variant{"bf16", "cublas_grouped"},
                            Variant{"fp8_tensor", "lt_graph_loop"}}) {
      if (c.out_of_time()) {
        res.status = "truncated";
        res.note = "budget ran out at grouped " + shape.kernel + " " + v.name;
        return res;
      }
      auto meas = gemm_measurement("grouped_gemm", v.dtype, v.name, shape.n, shape.k, 1, shape.models, E);
      meas.params = {{"experts", E}, {"zipf_s", c.plan.grouped_zipf_s}};
      const long long max_t = c.plan.grouped_tokens.back();
      try {
        // Weights: one slot holds all E experts; activations/outputs: one slot holds all tokens.
        GemmBuffers buf(c, v.dtype, shape.n, shape.k, max_t, E);
        const size_t eb = elem_bytes(v.dtype);
        for (const long long total : c.plan.grouped_tokens) {
          if (c.out_of_time()) {
            res.status = "truncated";
            break;
          }
          const auto counts = zipf_counts(total, E, c.plan.grouped_zipf_s);
          try {
            if (std::string(v.name) == "lt_graph_loop") {
              std::vector<std::unique_ptr<LtGemm>> gs(E);
              for (int e = 0; e < E; ++e) {
                if (counts[e] == 0) continue;
                gs[e] = std::make_unique<LtGemm>();
                make_gemm(c, *gs[e], v.dtype, shape.n, counts[e], shape.k, sc);
              }
              auto enqueue = [&](cudaStream_t s, int i) {
                long long off = 0;
                for (int e = 0; e < E; ++e) {
                  if (!gs[e]) continue;
                  run_gemm(c, *gs[e], buf.w.slot<char>(i) + eb * shape.n * shape.k * e, buf.x.slot<char>(i) + eb * shape.k * off,
                           buf.y.slot<char>(i) + 2 * shape.n * off, s);
                  off += counts[e];
                }
              };
              enqueue(c.s, 0);
              CK(cudaStreamSynchronize(c.s));
              meas.points.push_back(time_graph(c, static_cast<double>(total), buf.w.slots, enqueue));
            } else {
#if CUBLAS_VERSION < 120500
              throw BlasError("cublasGemmGroupedBatchedEx needs cuBLAS >= 12.5");
#endif
              // cublasGemmGroupedBatchedEx: one group per non-empty expert, pointer arrays on the device.
              std::vector<cublasOperation_t> ta, tb;
              std::vector<int> ms, ns, ks, lda, ldb, ldc, gsize;
              std::vector<float> alpha, beta;
              std::vector<int> experts_used;
              for (int e = 0; e < E; ++e) {
                if (counts[e] == 0) continue;
                experts_used.push_back(e);
                ta.push_back(CUBLAS_OP_T);
                tb.push_back(CUBLAS_OP_N);
                ms.push_back(static_cast<int>(shape.n));
                ns.push_back(static_cast<int>(counts[e]));
                ks.push_back(static_cast<int>(shape.k));
                lda.push_back(static_cast<int>(shape.k));
                ldb.push_back(static_cast<int>(shape.k));
                ldc.push_back(static_cast<int>(shape.n));
                gsize.push_back(1);
                alpha.push_back(1.0f);
                beta.push_back(0.0f);
              }
              const int groups = static_cast<int>(experts_used.size());
              const int slots = buf.w.slots;
              std::vector<const void*> ha(static_cast<size_t>(groups) * slots), hb(ha.size());
              std::vector<void*> hc(ha.size());
              for (int i = 0; i < slots; ++i) {
                long long off = 0;
                for (int gi = 0; gi < groups; ++gi) {
                  const int e = experts_used[gi];
                  ha[i * groups + gi] = buf.w.slot<char>(i) + 2 * shape.n * shape.k * e;
                  hb[i * groups + gi] = buf.x.slot<char>(i) + 2 * shape.k * off;
                  hc[i * groups + gi] = buf.y.slot<char>(i) + 2 * shape.n * off;
                  off += counts[e];
                }
              }
              DevBuf da(ha.size() * sizeof(void*)), db(ha.size() * sizeof(void*)), dc(ha.size() * sizeof(void*));
              CK(cudaMemcpy(da.get(), ha.data(), da.bytes(), cudaMemcpyHostToDevice));
              CK(cudaMemcpy(db.get(), hb.data(), db.bytes(), cudaMemcpyHostToDevice));
              CK(cudaMemcpy(dc.get(), hc.data(), dc.bytes(), cudaMemcpyHostToDevice));
              auto enqueue = [&](cudaStream_t s, int i) {
                CB(cublasSetStream(c.blas, s));
                CB(cublasGemmGroupedBatchedEx(c.blas, ta.data(), tb.data(), ms.data(), ns.data(), ks.data(), alpha.data(),
                                              da.get<const void*>() + static_cast<size_t>(i) * groups, CUDA_R_16BF,
                                              lda.data(), db.get<const void*>() + static_cast<size_t>(i) * groups,
                                              CUDA_R_16BF, ldb.data(), beta.data(),
                                              dc.get<void*>() + static_cast<size_t>(i) * groups, CUDA_R_16BF,
                                              ldc.data(), groups, gsize.data(), CUBLAS_COMPUTE_32F));
              };
              enqueue(c.s, 0);
              CK(cudaStreamSynchronize(c.s));
              meas.points.push_back(time_graph(c, static_cast<double>(total), slots, enqueue));
            }
          } catch (const BlasError& e) {
            record_unsupported(c, "grouped_gemm", std::string(v.dtype) + "/" + v.name, shape.n, shape.k,
                               static_cast<double>(total), e.what());
          }
        }
      } catch (const CudaError& e) {
        record_unsupported(c, "grouped_gemm", std::string(v.dtype) + "/" + v.name, shape.n, shape.k, -1, e.what());
        cudaGetLastError();
      }
      if (!meas.points.empty()) c.run.measurements.push_back(std::move(meas));
      c.save();
      if (res.status == "truncated") return res;
    }
  }
  return res;
}

SectionResult section_elementwise(Ctx& c) {
  SectionResult res;
  constexpr size_t kMaxBytes = 4ull << 30;  // skip points whose working set exceeds 4 GiB
  for (const auto& sh : c.plan.elementwise) {
    if (c.out_of_time()) {
      res.status = "truncated";
      res.note = "budget ran out at " + sh.kernel + " k=" + std::to_string(sh.k);
      return res;
    }
    mc::RawMeasurement m;
    m.kernel = sh.kernel;
    m.dtype = sh.dtype;
    m.variant = "custom";
    m.n = sh.n;
    m.k = sh.k;
    m.models = sh.models;
    const long long k = sh.k;
    const int topk = static_cast<int>(sh.n);
    // Per-row input/output bytes (documented in README: what each kernel's axis counts).
    double in_row = 0, out_row = 0, flops_row = 0;
    if (sh.kernel == "cast_fp8") {
      m.axis = "rows";
      in_row = 2.0 * k;
      out_row = k + (sh.dtype == "fp8_block_1x128" ? 4.0 * k / 128 : 4.0 * k / (128.0 * 128));
      flops_row = 3.0 * k;  // |x|, max, scale
    } else if (sh.kernel == "permute") {
      m.axis = "rows";
      in_row = 2.0 * k + 4;
      out_row = 2.0 * k;
    } else if (sh.kernel == "unpermute") {
      m.axis = "rows";  // token-expert pairs; outputs = rows / topk
      m.params = {{"topk", topk}};
      in_row = 2.0 * k + 8;
      out_row = 2.0 * k / topk;
      flops_row = 2.0 * k;
    } else if (sh.kernel == "swiglu") {
      m.axis = "tokens";
      in_row = 4.0 * k;
      out_row = 2.0 * k;
      flops_row = 5.0 * k;
    } else if (sh.kernel == "router_topk") {
      m.axis = "tokens";
      m.params = {{"experts", static_cast<double>(k)}, {"topk", topk}};
      in_row = 2.0 * k;
      out_row = 8.0 * topk;
      flops_row = static_cast<double>(k) * topk;
    }
    m.flops_per_unit = flops_row;
    m.bytes_per_unit = in_row + out_row;
    try {
      long long max_rows = 0;
      for (const long long r : c.plan.elementwise_rows) {
        if ((in_row + out_row) * r <= kMaxBytes) max_rows = std::max(max_rows, r);
      }
      if (sh.kernel == "unpermute") max_rows = (max_rows + topk - 1) / topk * topk;
      Arena in(static_cast<size_t>(in_row * max_rows) + 4096, c.l2, 4096);  // >= 2x L2 in total
      Arena out(static_cast<size_t>(out_row * max_rows) + 8192, c.l2, 4096);
      fill(in.buf.get<bf16>(), in.buf.bytes() / 2, 3, 4.0f, c.s);
      DevBuf idx(static_cast<size_t>(max_rows) * 4 + 256), wts(static_cast<size_t>(max_rows) * 4 + 256);
      for (const long long r0 : c.plan.elementwise_rows) {
        if (r0 > max_rows) break;
        if (c.out_of_time()) {
          res.status = "truncated";
          break;
        }
        long long rows = r0;
        if (sh.kernel == "unpermute") rows = (r0 + topk - 1) / topk * topk;
        const size_t in_bytes = static_cast<size_t>(in_row * rows) + 256;
        const size_t out_bytes = static_cast<size_t>(out_row * rows) + 4096;  // + fp8 scales, router weights
        // Executions per graph: enough for the inputs to sweep 2x L2, at most 256.
        const int inner = static_cast<int>(std::clamp<size_t>((2 * c.l2) / in_bytes + 1, 2, 256));
        std::function<void(cudaStream_t, int)> enq;
        if (sh.kernel == "cast_fp8" && sh.dtype == "fp8_block_1x128") {
          enq = [&, rows, in_bytes, out_bytes](cudaStream_t s, int i) {
            const long long groups = rows * k / 128;
            cast_fp8_1x128<<<static_cast<unsigned>((groups + 7) / 8), 256, 0, s>>>(
                in.at<bf16>(i, in_bytes), out.at<fp8>(i, out_bytes), reinterpret_cast<float*>(out.at<char>(i, out_bytes) + rows * k), groups);
          };
        } else if (sh.kernel == "cast_fp8") {
          enq = [&, rows, in_bytes, out_bytes](cudaStream_t s, int i) {
            const long long tiles = (rows + 127) / 128 * (k / 128);
            cast_fp8_128x128<<<static_cast<unsigned>(tiles), 256, 0, s>>>(
                in.at<bf16>(i, in_bytes), out.at<fp8>(i, out_bytes), reinterpret_cast<float*>(out.at<char>(i, out_bytes) + rows * k), rows,
                static_cast<int>(k));
          };
        } else if (sh.kernel == "permute") {
          fill_index<<<kFillBlocks, kFillThreads, 0, c.s>>>(idx.get<int>(), rows, static_cast<uint32_t>(rows), 7);
          enq = [&, rows, in_bytes, out_bytes](cudaStream_t s, int i) {
            permute_rows<<<static_cast<unsigned>(rows), 128, 0, s>>>(in.at<bf16>(i, in_bytes), out.at<bf16>(i, out_bytes), idx.get<int>(),
                                                                      static_cast<int>(k));
          };
        } else if (sh.kernel == "unpermute") {
          fill_index<<<kFillBlocks, kFillThreads, 0, c.s>>>(idx.get<int>(), rows, static_cast<uint32_t>(rows), 9);
          fill<float>(wts.get<float>(), rows, 5, 1.0f, c.s);
          enq = [&, rows, in_bytes, out_bytes](cudaStream_t s, int i) {
            unpermute_rows<<<static_cast<unsigned>(rows / topk), 128, 0, s>>>(
                in.at<bf16>(i, in_bytes), out.at<bf16>(i, out_bytes), idx.get<int>(), wts.get<float>(), topk, static_cast<int>(k));
          };
        } else if (sh.kernel == "swiglu") {
          enq = [&, rows, in_bytes, out_bytes](cudaStream_t s, int i) {
            const long long n = rows * k / 2;
            const unsigned blocks = static_cast<unsigned>(std::min<long long>((n + 255) / 256, 65535));
            swiglu<<<blocks, 256, 0, s>>>(in.at<bf16>(i, in_bytes), out.at<bf16>(i, out_bytes), rows, static_cast<int>(k));
          };
        } else if (sh.kernel == "router_topk") {
          enq = [&, rows, in_bytes, out_bytes](cudaStream_t s, int i) {
            int* ix = reinterpret_cast<int*>(out.at<char>(i, out_bytes));
            float* w = reinterpret_cast<float*>(out.at<char>(i, out_bytes) + 4 * rows * topk);
            router_topk<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, s>>>(in.at<bf16>(i, in_bytes), ix, w, rows,
                                                                             static_cast<int>(k), topk);
          };
        }
        CK(cudaGetLastError());
        enq(c.s, 0);
        CK(cudaGetLastError());
        CK(cudaStreamSynchronize(c.s));
        m.points.push_back(time_graph(c, static_cast<double>(rows), inner, enq));
      }
    } catch (const CudaError& e) {
      record_unsupported(c, sh.kernel, sh.dtype, sh.n, sh.k, -1, e.what());
      cudaGetLastError();
    }
    if (!m.points.empty()) c.run.measurements.push_back(std::move(m));
    c.save();
    if (res.status == "truncated") return res;
  }
  return res;
}

SectionResult section_copy_blocks(Ctx& c) {
  SectionResult res;
  const size_t bytes = static_cast<size_t>(c.plan.copy_bytes);
  DevBuf src(bytes), dst(bytes);
  fill(src.get<bf16>(), bytes / 2, 11, 1.0f, c.s);
  mc::RawMeasurement m;
  m.kernel = "copy_blocks";
  m.dtype = "bf16";
  m.variant = "uint4_grid_stride_512_threads";
  m.axis = "blocks";
  m.bytes_fixed = 2.0 * bytes;  // read + write per copy
  m.params = {{"bytes", static_cast<double>(bytes)}};
  std::vector<int> blocks;
  for (const int b : c.plan.copy_blocks) {
    if (b > 0) blocks.push_back(b);
  }
  for (const int mult : c.plan.copy_sm_multiples) blocks.push_back(mult * c.sms);
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  for (const int b : blocks) {
    if (c.out_of_time()) {
      res.status = "truncated";
      break;
    }
    m.points.push_back(time_graph(c, b, 1, [&](cudaStream_t s, int) {
      copy_kernel<<<b, 512, 0, s>>>(src.get<uint4>(), dst.get<uint4>(), bytes / 16);
    }));
  }
  c.run.measurements.push_back(std::move(m));
  return res;
}

SectionResult section_launch(Ctx& c) {
  SectionResult res;
  mc::RawMeasurement stream, graph;
  for (auto* m : {&stream, &graph}) {
    m->kernel = "launch";
    m->dtype = "none";
    m->axis = "kernels";
  }
  stream.variant = "stream";  // x empty kernels launched back to back; seconds for the whole burst
  graph.variant = "graph";    // the same burst as one CUDA graph replay; seconds for the whole burst
  for (const int n : c.plan.launch_bursts) {
    if (c.out_of_time()) {
      res.status = "truncated";
      break;
    }
    std::vector<double> v;
    empty_kernel<<<1, 1, 0, c.s>>>();
    CK(cudaStreamSynchronize(c.s));
    for (int s = 0; s < c.plan.samples; ++s) {
      CK(cudaEventRecord(c.ev_a, c.s));
      for (int i = 0; i < n; ++i) empty_kernel<<<1, 1, 0, c.s>>>();
      CK(cudaEventRecord(c.ev_b, c.s));
      v.push_back(event_seconds(c));
    }
    CK(cudaGetLastError());
    std::sort(v.begin(), v.end());
    stream.points.push_back({static_cast<double>(n), v[v.size() / 2], v.front(), v.back(), static_cast<int>(v.size())});
    mc::RawPoint g = time_graph(c, n, n, [](cudaStream_t s, int) { empty_kernel<<<1, 1, 0, s>>>(); });
    g.median_s *= n;
    g.min_s *= n;
    g.max_s *= n;
    graph.points.push_back(g);
  }
  c.run.measurements.push_back(std::move(stream));
  c.run.measurements.push_back(std::move(graph));
  return res;
}

SectionResult section_interference(Ctx& c, Sentinel& sen) {
  SectionResult res;
  if (!sen.g) {
    res.status = "unsupported";
    res.note = "sentinel GEMM could not be set up";
    return res;
  }
  const size_t spin_bytes = std::max<size_t>(4 * c.l2, 256ull << 20);
  DevBuf src(spin_bytes), dst(spin_bytes), flags(256);
  fill(src.get<bf16>(), spin_bytes / 2, 13, 1.0f, c.s);
  cudaStream_t side = nullptr;
  CK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  std::unique_ptr<CUstream_st, decltype(&cudaStreamDestroy)> side_guard(side, &cudaStreamDestroy);
  // One copy block per SM: ask for more than half an SM's shared memory, so neither a second copy block
  // nor a GEMM CTA (which needs far more) fits beside it.
  const int smem = static_cast<int>(c.prop.sharedMemPerMultiprocessor / 2 + 1024);
  CK(cudaFuncSetAttribute(spin_copy, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  mc::RawMeasurement m;
  m.kernel = "interference";
  m.dtype = "bf16";
  m.variant = "copy_holds_sms";
  m.n = c.plan.sentinel_n;
  m.k = c.plan.sentinel_k;
  m.axis = "sms";
  m.params = {{"tokens", static_cast<double>(c.plan.sentinel_tokens)}, {"copy_threads", 512}};
  const int slots = sen.buf->w.slots;
  // GEMMs per sample: enough to last about 1 ms alone.
  const double alone = c.run.sentinel.empty() ? 3e-4 : c.run.sentinel.back().median_s;
  const int reps = static_cast<int>(std::clamp(std::ceil(1e-3 / alone), 2.0, 1000.0));
  int* stop = flags.get<int>();
  int* started = flags.get<int>() + 32;
  for (const int held : c.plan.interference_sms) {
    if (c.out_of_time()) {
      res.status = "truncated";
      break;
    }
    std::vector<double> v;
    for (int s = 0; s < c.plan.samples + 1; ++s) {  // the first sample is a warm-up
      // Reset the flags and let them land before anything reads them.
      CK(cudaMemsetAsync(flags.get(), 0, 256, side));
      CK(cudaStreamSynchronize(side));
      if (held > 0) {
        spin_copy<<<held, 512, smem, side>>>(src.get<uint4>(), dst.get<uint4>(), spin_bytes / 16, stop, started,
                                             2'000'000'000ull);
        // The GEMMs start only once every copy block is resident (bounded wait of 1 s).
        wait_started<<<1, 1, 0, c.s>>>(started, held, 1'000'000'000ull);
      }
      CK(cudaEventRecord(c.ev_a, c.s));
      for (int r = 0; r < reps; ++r) {
        run_gemm(c, *sen.g, sen.buf->w.slot<void>(r % slots), sen.buf->x.slot<void>(r), sen.buf->y.slot<void>(r), c.s);
      }
      CK(cudaEventRecord(c.ev_b, c.s));
      set_flag<<<1, 1, 0, c.s>>>(stop);
      CK(cudaGetLastError());
      const double t = event_seconds(c) / reps;
      CK(cudaStreamSynchronize(side));
      if (s > 0) v.push_back(t);
    }
    std::sort(v.begin(), v.end());
    m.points.push_back({static_cast<double>(held), v[v.size() / 2], v.front(), v.back(), static_cast<int>(v.size())});
  }
  c.run.measurements.push_back(std::move(m));
  return res;
}

SectionResult section_all_to_all(Ctx& c) {
  SectionResult res;
  int ndev = 0;
  CK(cudaGetDeviceCount(&ndev));
#if !MOESIM_HAVE_NCCL
  res.status = "skipped";
  res.note = "built without NCCL";
  (void)ndev;
  (void)c;
  return res;
#else
  if (ndev < 2) {
    res.status = "skipped";
    res.note = std::to_string(ndev) + " GPU visible: NCCL all-to-all needs >= 2 GPUs in this process";
    return res;
  }
  std::vector<ncclComm_t> comms(ndev);
  if (ncclCommInitAll(comms.data(), ndev, nullptr) != ncclSuccess) {
    res.status = "failed";
    res.note = "ncclCommInitAll failed";
    return res;
  }
  const long long max_bytes = c.plan.a2a_bytes.back();
  std::vector<cudaStream_t> streams(ndev);
  std::vector<cudaEvent_t> ea(ndev), eb(ndev);
  std::vector<void*> sendb(ndev), recvb(ndev);
  for (int d = 0; d < ndev; ++d) {
    CK(cudaSetDevice(d));
    CK(cudaStreamCreateWithFlags(&streams[d], cudaStreamNonBlocking));
    CK(cudaEventCreate(&ea[d]));
    CK(cudaEventCreate(&eb[d]));
    CK(cudaMalloc(&sendb[d], max_bytes));
    CK(cudaMalloc(&recvb[d], max_bytes));
    CK(cudaMemset(sendb[d], 1, max_bytes));
  }
  // One all-to-all, as nccl-tests does it: each GPU sends bytes/ndev to every GPU (itself included).
  auto a2a = [&](long long bytes) {
    const size_t chunk = static_cast<size_t>(bytes / ndev);
    if (ncclGroupStart() != ncclSuccess) throw CudaError("ncclGroupStart failed");
    for (int d = 0; d < ndev; ++d) {
      for (int p = 0; p < ndev; ++p) {
        ncclSend(static_cast<char*>(sendb[d]) + p * chunk, chunk, ncclInt8, p, comms[d], streams[d]);
        ncclRecv(static_cast<char*>(recvb[d]) + p * chunk, chunk, ncclInt8, p, comms[d], streams[d]);
      }
    }
    if (ncclGroupEnd() != ncclSuccess) throw CudaError("ncclGroupEnd failed");
  };
  auto timed = [&](long long bytes, int reps) {
    for (int d = 0; d < ndev; ++d) {
      CK(cudaSetDevice(d));
      CK(cudaEventRecord(ea[d], streams[d]));
    }
    for (int r = 0; r < reps; ++r) a2a(bytes);
    double worst = 0;
    for (int d = 0; d < ndev; ++d) {
      CK(cudaSetDevice(d));
      CK(cudaEventRecord(eb[d], streams[d]));
    }
    for (int d = 0; d < ndev; ++d) {
      CK(cudaSetDevice(d));
      CK(cudaEventSynchronize(eb[d]));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, ea[d], eb[d]));
      worst = std::max(worst, ms * 1e-3);
    }
    return worst / reps;
  };
  mc::RawMeasurement m;
  m.kernel = "all_to_all";
  m.dtype = "bytes";
  m.variant = "nccl_send_recv";
  m.axis = "bytes_per_gpu";
  m.params = {{"gpus", ndev}};
  try {
    for (const long long bytes : c.plan.a2a_bytes) {
      if (c.out_of_time()) {
        res.status = "truncated";
        break;
      }
      timed(bytes, 2);  // warm-up
      const double pilot = std::max(timed(bytes, 1), 1e-7);
      const int reps = static_cast<int>(std::clamp(std::ceil(c.plan.min_sample_s / pilot), 1.0, 10000.0));
      std::vector<double> v;
      for (int s = 0; s < c.plan.samples; ++s) v.push_back(timed(bytes, reps));
      std::sort(v.begin(), v.end());
      m.points.push_back({static_cast<double>(bytes), v[v.size() / 2], v.front(), v.back(), static_cast<int>(v.size())});
    }
  } catch (const CudaError& e) {
    res.status = "failed";
    res.note = e.what();
  }
  for (int d = 0; d < ndev; ++d) {
    cudaSetDevice(d);
    cudaFree(sendb[d]);
    cudaFree(recvb[d]);
    cudaEventDestroy(ea[d]);
    cudaEventDestroy(eb[d]);
    cudaStreamDestroy(streams[d]);
    ncclCommDestroy(comms[d]);
  }
  CK(cudaSetDevice(c.dev));
  if (!m.points.empty()) c.run.measurements.push_back(std::move(m));
  return res;
#endif
}

// ---- driver ---------------------------------------------------------------------------------------------

std::string version_string(int v) {  // CUDA encodes 13.0 as 13000
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void fill_provenance(Ctx& c, const std::string& git_sha, const std::string& command) {
  auto& p = c.run.provenance;
  p.gpu_name = c.prop.name;
  p.sms = c.sms;
  p.l2_bytes = static_cast<long long>(c.l2);
  p.memory_bytes = static_cast<long long>(c.prop.totalGlobalMem);
  int v = 0;
  CK(cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, c.dev));
  p.memory_bus_bits = v;
  CK(cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, c.dev));  // kHz
  p.sm_clock_max_mhz = v / 1000.0;
  CK(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, c.dev));
  p.mem_clock_max_mhz = v / 1000.0;
  p.compute_capability = std::to_string(c.prop.major) + "." + std::to_string(c.prop.minor);
  CK(cudaDriverGetVersion(&v));
  p.driver_version = version_string(v);
  CK(cudaRuntimeGetVersion(&v));
  p.cuda_runtime_version = version_string(v);
  p.cublaslt_version = std::to_string(cublasLtGetVersion());
#if MOESIM_HAVE_NCCL
  ncclGetVersion(&v);
  p.nccl_version = std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
#else
  p.nccl_version = "none";
#endif
  CK(cudaGetDeviceCount(&v));
  p.visible_gpus = v;
  p.git_sha = git_sha;
  p.date_utc = utc_now();
  p.preset = c.plan.preset;
  p.budget_s = c.plan.budget_s;
  p.samples_per_point = c.plan.samples;
  p.min_sample_s = c.plan.min_sample_s;
  p.command = command;
  p.synthetic = false;
}

void usage() {
  std::printf(
      "usage: moesim-calibrate [--preset quick|full] [--budget-s S] [--out FILE] [--sections a,b,...]\n"
      "                        [--samples N] [--device N] [--git-sha SHA] [--dry-run]\n"
      "  --dry-run     print the plan (sections, shapes, sweeps, estimated time) and exit; needs no GPU\n"
      "  --preset      quick (< 4 min on an H200) or full (default quick)\n"
      "  --budget-s    device time budget; sections are truncated or skipped when it runs out (recorded)\n"
      "  --out         raw YAML, rewritten after every section (default moesim-calibrate-raw.yaml)\n"
      "  --sections    subset of: clock launch copy_blocks interference expert_gemm elementwise grouped_gemm\n"
      "                all_to_all\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "quick", out = "moesim-calibrate-raw.yaml", git_sha = MOESIM_GIT_SHA, sections;
  double budget = -1;
  int samples = -1, device = 0;
  bool dry = false;
  std::string command;
  for (int i = 0; i < argc; ++i) {
    if (i) command += ' ';
    command += argv[i];
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--dry-run") dry = true;
      else if (a == "--preset") preset = value();
      else if (a == "--budget-s") budget = std::stod(value());
      else if (a == "--out") out = value();
      else if (a == "--git-sha") git_sha = value();
      else if (a == "--sections") sections = value();
      else if (a == "--samples") samples = std::stoi(value());
      else if (a == "--device") device = std::stoi(value());
      else if (a == "--help" || a == "-h") {
        usage();
        return 0;
      } else {
        std::fprintf(stderr, "error: unknown argument '%s' (see --help)\n", a.c_str());
        return 2;
      }
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "error: bad value for %s\n", a.c_str());
      return 2;
    }
  }
  mc::Plan plan;
  try {
    plan = mc::make_plan(preset);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (budget > 0) plan.budget_s = budget;
  if (samples >= 5) plan.samples = samples;  // the median needs at least 5
  if (!sections.empty()) {
    std::vector<std::string> keep;
    size_t pos = 0;
    while (pos <= sections.size()) {
      const size_t e = std::min(sections.find(',', pos), sections.size());
      const std::string s = sections.substr(pos, e - pos);
      if (std::find(plan.sections.begin(), plan.sections.end(), s) == plan.sections.end()) {
        std::fprintf(stderr, "error: unknown section '%s' (see --help)\n", s.c_str());
        return 2;
      }
      keep.push_back(s);
      pos = e + 1;
    }
    std::vector<std::string> ordered;  // keep the plan's order
    for (const auto& s : plan.sections) {
      if (std::find(keep.begin(), keep.end(), s) != keep.end()) ordered.push_back(s);
    }
    plan.sections = ordered;
  }
  if (dry) {
    std::fputs(mc::describe_plan(plan).c_str(), stdout);
    std::printf("would write: %s (git sha %s)\n", out.c_str(), git_sha.c_str());
    return 0;
  }

  Ctx c;
  c.plan = plan;
  c.out_path = out;
  c.t0 = Clock::now();
  try {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
      std::fprintf(stderr, "error: no CUDA device visible (use --dry-run to print the plan without one)\n");
      return 1;
    }
    c.dev = device;
    CK(cudaSetDevice(c.dev));
    CK(cudaGetDeviceProperties(&c.prop, c.dev));
    c.sms = c.prop.multiProcessorCount;
    int l2 = 0;
    CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, c.dev));
    c.l2 = static_cast<size_t>(l2);
    CK(cudaStreamCreateWithFlags(&c.s, cudaStreamNonBlocking));
    CK(cudaEventCreate(&c.ev_a));
    CK(cudaEventCreate(&c.ev_b));
    CB(cublasLtCreate(&c.lt));
    CB(cublasCreate(&c.blas));
    c.workspace = DevBuf(c.ws_bytes);
    CB(cublasSetWorkspace(c.blas, c.workspace.get(), c.ws_bytes));
    fill_provenance(c, git_sha, command);
    const auto est = mc::estimate_plan(c.plan);
    std::printf("moesim-calibrate: %s, %d SMs, L2 %zu MiB, preset %s, budget %.0f s (estimate %.0f s), writing %s\n",
                c.prop.name, c.sms, c.l2 >> 20, plan.preset.c_str(), plan.budget_s, est.total(), out.c_str());
    std::fflush(stdout);
    c.save();

    const Scales scales = make_scales(c);
    Sentinel sen;
    try {
      sen.g = std::make_unique<LtGemm>();
      make_gemm(c, *sen.g, "bf16", plan.sentinel_n, plan.sentinel_tokens, plan.sentinel_k, scales);
      sen.buf = std::make_unique<GemmBuffers>(c, "bf16", plan.sentinel_n, plan.sentinel_k, plan.sentinel_tokens);
      c.run.provenance.sm_clock_measured_mhz = probe_clock_mhz(c);
      measure_sentinel(c, sen, "start");
    } catch (const std::exception& e) {
      sen.g.reset();
      std::printf("sentinel GEMM unavailable: %s\n", e.what());
    }
    c.save();

    const std::vector<std::pair<std::string, double>> shares{{"expert_gemm", 0.6}, {"elementwise", 0.5}, {"grouped_gemm", 0.8}};
    for (const auto& name : mc::all_sections()) {
      mc::RawSection sec{name, "skipped", 0, "not selected"};
      const bool selected = std::find(plan.sections.begin(), plan.sections.end(), name) != plan.sections.end();
      if (selected && c.out_of_time()) {
        sec.note = "budget exhausted before the section started";
      } else if (selected) {
        const double t_start = c.elapsed();
        double share = 1.0;
        for (const auto& [n, s] : shares) {
          if (n == name) share = s;
        }
        c.section_deadline_s = t_start + share * (plan.budget_s - t_start);
        SectionResult r;
        try {
          if (name == "clock") {
            c.run.provenance.sm_clock_measured_mhz = probe_clock_mhz(c);
            r.note = "SM clock under load " + std::to_string(static_cast<int>(c.run.provenance.sm_clock_measured_mhz)) + " MHz";
          } else if (name == "launch") {
            r = section_launch(c);
          } else if (name == "copy_blocks") {
            r = section_copy_blocks(c);
          } else if (name == "interference") {
            r = section_interference(c, sen);
          } else if (name == "expert_gemm") {
            r = section_expert_gemm(c, scales);
          } else if (name == "elementwise") {
            r = section_elementwise(c);
          } else if (name == "grouped_gemm") {
            r = section_grouped_gemm(c, scales);
          } else if (name == "all_to_all") {
            r = section_all_to_all(c);
          }
        } catch (const std::exception& e) {
          r.status = "failed";
          r.note = e.what();
          cudaGetLastError();
        }
        c.section_deadline_s = 1e30;
        sec = mc::RawSection{name, r.status, c.elapsed() - t_start, r.note};
        if (name != "clock") {
          try {
            measure_sentinel(c, sen, name);
          } catch (const std::exception& e) {
            if (!sec.note.empty()) sec.note += "; ";
            sec.note += std::string("sentinel failed: ") + e.what();
          }
        }
      }
      c.run.sections.push_back(sec);
      c.save();
      std::printf("[%7.1f s] %-13s %-10s %s\n", c.elapsed(), name.c_str(), sec.status.c_str(), sec.note.c_str());
      std::fflush(stdout);
    }
    c.run.complete = true;
    c.save();
    std::printf("done in %.1f s: %zu measurements, %zu unsupported entries -> %s\n", c.elapsed(),
                c.run.measurements.size(), c.run.unsupported.size(), out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    try {
      c.save();
    } catch (...) {
    }
    return 1;
  }
}
