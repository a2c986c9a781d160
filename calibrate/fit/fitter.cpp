#include "fitter.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

namespace moesim::calibrate {

namespace {
// Largest all-to-all (bytes sent per GPU) whose time is taken as the fixed per-call collective time: 16 KiB
// over 8 NVLink4 GPUs is 2 KiB per peer, well under a microsecond of transfer against ~10 us of launch.
constexpr double kMaxLaunchBytes = 16384;

bool is_gemm_kernel(const std::string& k) {
  return k == "expert_gate_up" || k == "expert_down" || k == "grouped_gemm";
}
bool is_profile_kernel(const std::string& k) {
  static const std::set<std::string> ks{"expert_gate_up", "expert_down", "grouped_gemm", "cast_fp8",
                                        "permute",        "unpermute",   "swiglu",       "router_topk"};
  return ks.count(k) > 0;
}
std::string fmt_num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

double median_or(const std::vector<double>& v, double fallback) { return v.empty() ? fallback : median(v); }

}  // namespace

std::string slug(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

FitReport fit_run(const RawRun& run, const ProfileDoc& ds, const FitOptions& opt) {
  const std::string file = opt.raw_label.empty() ? "raw" : opt.raw_label;
  if (run.provenance.synthetic && !opt.allow_synthetic) {
    throw FitError(file, "provenance.synthetic",
                   "this raw file is synthetic test data, not a measurement; refusing to write a measured profile "
                   "(pass --allow-synthetic for tests)");
  }
  const double bw = ds.bandwidth_bytes_per_s();
  FitReport rep;
  ProfileDoc& p = rep.profile;
  p.kind = "measured";
  p.id = opt.id.empty() ? slug(ds.gpu_name) + "-measured" : opt.id;
  if (run.provenance.synthetic && p.id.find("synthetic") == std::string::npos) p.id += "-synthetic";
  p.gpu_name = ds.gpu_name;
  p.sms = run.provenance.sms;
  p.memory = ds.memory;
  p.memory_bandwidth = ds.memory_bandwidth;
  p.peak = ds.peak;

  std::vector<double> gemm_c, gemm_m, elem_m;
  for (size_t i = 0; i < run.measurements.size(); ++i) {
    const RawMeasurement& m = run.measurements[i];
    if (!is_profile_kernel(m.kernel)) continue;
    if (m.kernel == "grouped_gemm" && m.variant != "lt_graph_loop") {
      rep.notes.push_back("grouped_gemm " + m.dtype + " variant " + m.variant + " n=" + std::to_string(m.n) +
                          " k=" + std::to_string(m.k) + " kept in the raw file only (the profile holds lt_graph_loop)");
      continue;
    }
    if (m.points.empty()) continue;
    // Two shapes of one kernel/dtype may coincide across splits and models: the plan dedupes them, but a
    // hand-edited raw file might not. Keep the first and say so, before any fitting: an ignored table must
    // not move the class efficiencies.
    bool dup = false;
    for (const auto& t : p.tables) dup = dup || (t.kernel == m.kernel && t.dtype == m.dtype && t.n == m.n && t.k == m.k);
    if (dup) {
      rep.notes.push_back("duplicate table " + m.kernel + " " + m.dtype + " n=" + std::to_string(m.n) +
                          " k=" + std::to_string(m.k) + " ignored");
      continue;
    }
    TableReport tr;
    tr.kernel = m.kernel;
    tr.dtype = m.dtype;
    tr.variant = m.variant;
    tr.n = m.n;
    tr.k = m.k;
    tr.points = m.points.size();
    tr.work.flops_per_token = m.flops_per_unit;
    tr.work.bytes_fixed = m.bytes_fixed;
    tr.work.bytes_per_token = m.bytes_per_unit;
    tr.work.gemm_n = is_gemm_kernel(m.kernel) ? m.n : 0;
    tr.work.tile_tokens = opt.tile_tokens;
    tr.work.tile_n = opt.tile_n;
    tr.work.sms = run.provenance.sms;
    // Elementwise kernels run on CUDA cores, but their FLOP count is tiny: the bf16 tensor peak only serves
    // as a scale there, and eta_compute is reported as not identified when no point is compute-bound.
    tr.peaks.flops_per_s = ds.peak_flops(is_gemm_kernel(m.kernel) ? m.dtype : "bf16");
    tr.peaks.bytes_per_s = bw;
    std::vector<double> xs, ys;
    for (const auto& pt : m.points) {
      xs.push_back(pt.x);
      ys.push_back(pt.median_s);
    }
    tr.holdout_loo = holdout_mape_loo(xs, ys);
    ProfileTable tab;
    tab.kernel = m.kernel;
    tab.dtype = m.dtype;
    tab.n = m.n;
    tab.k = m.k;
    tab.provenance = "measured";
    for (size_t j = 0; j < xs.size(); ++j) tab.points.emplace_back(xs[j], ys[j]);
    tab.has_holdout = true;
    tab.holdout_mape = tr.holdout_loo;
    const Efficiency cls = is_gemm_kernel(m.kernel) ? ds.gemm : ds.elementwise;
    const RooflineParams fallback{0, cls.compute, cls.memory};
    if (tr.peaks.flops_per_s <= 0) {
      rep.notes.push_back(m.kernel + " " + m.dtype + ": datasheet '" + ds.id + "' has no peak for " + m.dtype +
                          "; table written without a fit");
      tr.holdout_fit = std::numeric_limits<double>::quiet_NaN();
    } else {
      tr.fit = fit_roofline(tr.work, tr.peaks, xs, ys, fallback);
      tr.fitted = true;
      tr.holdout_fit = holdout_mape_fit_every_other(tr.work, tr.peaks, xs, ys, fallback);
      tab.has_fit = true;
      tab.fit = tr.fit.params;
      const bool expert = m.kernel == "expert_gate_up" || m.kernel == "expert_down";
      if (expert && m.dtype == "bf16" && m.split == 1) {
        if (tr.fit.compute_bound_points > 0) gemm_c.push_back(tr.fit.params.eta_compute);
        if (tr.fit.memory_bound_points > 0) gemm_m.push_back(tr.fit.params.eta_memory);
      }
      if (!is_gemm_kernel(m.kernel) && tr.fit.memory_bound_points > 0) elem_m.push_back(tr.fit.params.eta_memory);
    }
    p.tables.push_back(std::move(tab));
    rep.tables.push_back(std::move(tr));
  }
  if (p.tables.empty()) throw FitError(file, "measurements", "no kernel measurements to fit");

  // Class efficiencies: medians of the per-table fits; what was not measured comes from the datasheet.
  p.gemm = {median_or(gemm_c, ds.gemm.compute), median_or(gemm_m, ds.gemm.memory)};
  p.elementwise = {ds.elementwise.compute, median_or(elem_m, ds.elementwise.memory)};
  p.attention = ds.attention;

  // Launch overhead: slope of stream-launch burst time over burst size.
  p.launch_overhead = ds.launch_overhead;
  bool launch_measured = false, interference_measured = false;
  p.has_overlap_interference = ds.has_overlap_interference;
  p.overlap_interference = ds.overlap_interference;
  p.collective_launch = ds.collective_launch;
  p.comm_sms = ds.comm_sms;
  bool collective_launch_measured = false;
  for (const auto& m : run.measurements) {
    if (m.kernel == "launch" && m.variant == "stream" && m.points.size() >= 2) {
      std::vector<double> xs, ys;
      for (const auto& pt : m.points) {
        xs.push_back(pt.x);
        ys.push_back(pt.median_s);
      }
      const Line l = fit_line(xs, ys);
      if (l.slope > 0) {
        p.launch_overhead = format_seconds(l.slope);
        launch_measured = true;
      }
    }
    if (m.kernel == "interference" && m.points.size() >= 2 && m.points.front().x == 0) {
      const RawPoint* best = &m.points[1];
      for (const auto& pt : m.points) {
        if (pt.x > 0 && std::abs(pt.x - opt.interference_sms) < std::abs(best->x - opt.interference_sms)) best = &pt;
      }
      p.overlap_interference = std::max(1.0, best->median_s / m.points.front().median_s);
      p.has_overlap_interference = true;
      interference_measured = true;
      rep.notes.push_back("overlap_interference from a copy kernel holding " + fmt_num("%.0f", best->x) + " SMs: " +
                          fmt_num("%.3f", p.overlap_interference));
    }
    if (m.kernel == "copy_blocks" && !m.points.empty()) {
      double best_bw = 0;
      for (const auto& pt : m.points) best_bw = std::max(best_bw, m.bytes_fixed / pt.median_s);
      double need = 0;
      for (const auto& pt : m.points) {
        if (m.bytes_fixed / pt.median_s >= 0.9 * best_bw) {
          need = pt.x;
          break;
        }
      }
      rep.notes.push_back("device copy: best " + fmt_num("%.0f", best_bw / 1e9) + " GB/s (read + write); 90 % of it from " +
                          fmt_num("%.0f", need) + " thread blocks");
    }
    if (m.kernel == "all_to_all" && !m.points.empty()) {
      const auto& last = m.points.back();
      rep.notes.push_back("NCCL all-to-all (" + m.variant + "): " + fmt_num("%.0f", last.x) + " bytes per GPU in " +
                          format_seconds(last.median_s) + " (bandwidth is the network model's, not the profile's)");
      // The smallest all-to-all is the fixed per-call time (launch and setup): at <= kMaxLaunchBytes per GPU the
      // bytes themselves take a small fraction of it. Points are sorted by bytes (raw format).
      const auto& first = m.points.front();
      if (first.x > 0 && first.x <= kMaxLaunchBytes && first.median_s > 0) {
        p.collective_launch = {true, format_seconds(first.median_s), "measured",
                               "moesim-calibrate all_to_all (" + m.variant + "): " + fmt_num("%.0f", first.x) +
                                   " bytes per GPU in " + format_seconds(first.median_s) + ", the smallest size run"};
        collective_launch_measured = true;
        rep.notes.push_back("collective_launch from the smallest all-to-all: " + p.collective_launch.value);
      }
    }
  }
  if (!launch_measured) rep.notes.push_back("launch overhead not measured: kept the datasheet value " + p.launch_overhead);
  if (!interference_measured)
    rep.notes.push_back(ds.has_overlap_interference ? "overlap interference not measured: kept the datasheet value"
                                                    : "overlap interference not measured: derived from sms and comm_sms");
  if (!collective_launch_measured)
    rep.notes.push_back("collective launch not measured (no all-to-all of <= 16 KiB per GPU): kept the datasheet's");

  // Sentinel drift across the run.
  if (!run.sentinel.empty()) {
    double lo = run.sentinel.front().median_s, hi = lo;
    for (const auto& s : run.sentinel) {
      lo = std::min(lo, s.median_s);
      hi = std::max(hi, s.median_s);
    }
    rep.sentinel_drift = lo > 0 ? (hi - lo) / lo : 0;
    if (rep.sentinel_drift > 0.05) {
      rep.notes.push_back("WARNING: sentinel GEMM drifted " + fmt_num("%.1f", rep.sentinel_drift * 100) +
                          " % during the run (throttling or interference): treat the profile with care");
    }
  }
  std::vector<std::string> incomplete;
  for (const auto& s : run.sections) {
    if (s.status != "complete") incomplete.push_back(s.name + ":" + s.status);
  }

  std::vector<double> loo;
  for (const auto& t : rep.tables) loo.push_back(t.holdout_loo);
  const double median_loo = median_or(loo, 0);
  if (run.provenance.synthetic) {
    p.confidence = "low";
  } else {
    p.confidence = (rep.sentinel_drift <= 0.02 && run.complete && incomplete.empty() && median_loo <= 0.05) ? "high" : "medium";
  }

  const auto& v = run.provenance;
  if (v.synthetic) p.sources.push_back("SYNTHETIC test data from " + file + ": not a measurement of any GPU");
  p.sources.push_back("moesim-calibrate run " + v.date_utc + " on " + v.gpu_name + " (raw file " + file + ", preset " +
                      v.preset + ")");
  p.sources.push_back("peaks, memory and bandwidth: datasheet profile " + ds.id);
  p.sources.push_back("attention and elementwise compute efficiency: datasheet profile " + ds.id + " (not calibrated)");
  if (!launch_measured) p.sources.push_back("launch_overhead: datasheet profile " + ds.id);
  if (!interference_measured && ds.has_overlap_interference)
    p.sources.push_back("overlap_interference: datasheet profile " + ds.id);
  if (!collective_launch_measured && ds.collective_launch.present)
    p.sources.push_back("collective_launch: datasheet profile " + ds.id);
  p.provenance = {
      {"gpu", v.gpu_name},
      {"driver", v.driver_version},
      {"cuda_runtime", v.cuda_runtime_version},
      {"cublaslt", v.cublaslt_version},
      {"nccl", v.nccl_version},
      {"date_utc", v.date_utc},
      {"git_sha", v.git_sha},
      {"preset", v.preset},
      {"raw_file", file},
      {"run_complete", run.complete ? "true" : "false"},
      {"incomplete_sections", incomplete.empty() ? "none" : [&] {
         std::string s;
         for (const auto& x : incomplete) {
           if (!s.empty()) s += ", ";
           s += x;
         }
         return s;
       }()},
      {"sm_clock_max_mhz", fmt_num("%.0f", v.sm_clock_max_mhz)},
      {"sm_clock_measured_mhz", fmt_num("%.0f", v.sm_clock_measured_mhz)},
      {"sentinel_drift", fmt_num("%.4f", rep.sentinel_drift)},
      {"datasheet", ds.id},
      {"holdout_method", "table: leave-one-out over interior points (linear interpolation between neighbours)"},
      {"fit_model", "alpha + max(flops/(eta_c*P), bytes/(eta_m*BW)); GEMM tokens rounded up to " +
                        std::to_string(opt.tile_tokens) + ", n to " + std::to_string(opt.tile_n) +
                        ", waves = ceil(tiles/SMs) above one wave"},
  };
  if (v.synthetic) p.provenance.emplace_back("synthetic", "true");
  return rep;
}

FitReport derive_profile(const FitReport& src, const ProfileDoc& target, const std::string& id) {
  FitReport rep;
  ProfileDoc& p = rep.profile;
  const ProfileDoc& s = src.profile;
  p.kind = "derived";
  p.id = id.empty() ? slug(target.gpu_name) + "-derived" : id;
  p.gpu_name = target.gpu_name;
  p.sms = target.sms;
  p.memory = target.memory;
  p.memory_bandwidth = target.memory_bandwidth;
  p.peak = target.peak;
  p.gemm = s.gemm;
  p.attention = target.attention;
  p.elementwise = s.elementwise;
  p.launch_overhead = s.launch_overhead;
  // Interference measured on the source GPU is kept; otherwise the simulator derives it from the target's SMs.
  p.has_overlap_interference = s.has_overlap_interference;
  p.overlap_interference = s.overlap_interference;
  // The collective launch time and the comm kernels' SMs belong to the target's machine and library: the
  // target datasheet's figures; so does the GEMM shape model (tiles, K overhead from its peak and bandwidth).
  p.collective_launch = target.collective_launch;
  p.comm_sms = target.comm_sms;
  p.gemm_shape = target.gemm_shape;
  p.confidence = "low";
  const double bw = target.bandwidth_bytes_per_s();
  for (size_t i = 0; i < s.tables.size(); ++i) {
    const ProfileTable& st = s.tables[i];
    const TableReport& tr = src.tables[i];
    if (!tr.fitted) {
      rep.notes.push_back(st.kernel + " " + st.dtype + ": no fit on the source, not derived");
      continue;
    }
    TableReport nt = tr;
    nt.peaks.flops_per_s = target.peak_flops(is_gemm_kernel(st.kernel) ? st.dtype : "bf16");
    nt.peaks.bytes_per_s = bw;
    nt.work.sms = target.sms;
    if (nt.peaks.flops_per_s <= 0) {
      rep.notes.push_back(st.kernel + " " + st.dtype + ": target '" + target.id + "' has no peak for it, dropped");
      continue;
    }
    ProfileTable t = st;
    t.provenance = "derived";
    for (auto& [tok, sec] : t.points) {
      sec *= roofline_time(nt.work, nt.peaks, st.fit, tok) / roofline_time(tr.work, tr.peaks, st.fit, tok);
    }
    p.tables.push_back(std::move(t));
    rep.tables.push_back(std::move(nt));
  }
  p.sources.push_back("efficiencies, alphas and table shapes scaled from profile " + s.id);
  p.sources.push_back("peaks, memory, bandwidth, SMs and attention efficiency: datasheet profile " + target.id);
  for (const auto& x : target.sources) p.sources.push_back("datasheet: " + x);
  p.provenance = {{"derived_from", s.id},
                  {"target_datasheet", target.id},
                  {"method", "points scaled by roofline(target)/roofline(source) at the source's fitted alpha and "
                             "efficiencies; holdout_mape is the source's interpolation error"}};
  for (const auto& [k, v] : s.provenance) {
    if (k == "gpu" || k == "date_utc" || k == "git_sha" || k == "cublaslt" || k == "driver") {
      p.provenance.emplace_back("source_" + k, v);
    }
  }
  return rep;
}

std::string format_report(const FitReport& r) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-15s %-18s %-14s %6s %6s %4s %9s %9s %8s %7s %7s %s\n", "kernel", "dtype",
                "variant", "n", "k", "pts", "loo_mape", "fit_mape", "alpha_us", "eta_c", "eta_m", "bound(c/m)");
  out += buf;
  for (const auto& t : r.tables) {
    const std::string fit_mape = std::isnan(t.holdout_fit) ? "n/a" : fmt_num("%.4f", t.holdout_fit);
    std::snprintf(buf, sizeof buf, "%-15s %-18s %-14s %6lld %6lld %4zu %9.4f %9s %8.2f %7.3f %7.3f %d/%d\n",
                  t.kernel.c_str(), t.dtype.c_str(), t.variant.c_str(), t.n, t.k, t.points, t.holdout_loo,
                  fit_mape.c_str(), t.fit.params.alpha_s * 1e6, t.fit.params.eta_compute, t.fit.params.eta_memory,
                  t.fit.compute_bound_points, t.fit.memory_bound_points);
    out += buf;
  }
  out += "loo_mape: table interpolation error, leave-one-out over interior points; fit_mape: roofline fit trained on\n"
         "even-index points, scored on odd-index points; bound: points the fit puts on the compute / memory side.\n";
  for (const auto& n : r.notes) out += "note: " + n + "\n";
  return out;
}

}  // namespace moesim::calibrate
