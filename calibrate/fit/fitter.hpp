// Turns a raw calibration run into moesim-profile/1 documents (kind measured, and derived ones).
#pragma once

#include <string>
#include <vector>

#include "../common/raw_format.hpp"
#include "fit.hpp"
#include "io.hpp"

namespace moesim::calibrate {

struct FitOptions {
  std::string id;            // profile id; default "<gpu slug>-measured"
  std::string raw_label;     // raw file name, recorded in provenance
  int tile_tokens = 128;
  int tile_n = 128;
  bool allow_synthetic = false;  // synthetic (test) raw files are refused unless set
  double interference_sms = 20;  // SMs a comm kernel holds for overlap_interference (DeepEP uses ~20-24)
};

// One profile table and how well it is modelled.
struct TableReport {
  std::string kernel, dtype, variant;
  long long n = 0, k = 0;
  size_t points = 0;
  double holdout_loo = 0;         // table interpolation, leave-one-out over interior points
  double holdout_fit = 0;         // fit, trained on even-index points, scored on odd ones (NaN: too few)
  FitResult fit;
  bool fitted = false;
  WorkModel work;
  Peaks peaks;
};

struct FitReport {
  ProfileDoc profile;
  std::vector<TableReport> tables;   // parallel to profile.tables
  std::vector<std::string> notes;    // printed, not fatal (skipped measurements, drift, unmeasured parts)
  double sentinel_drift = 0;         // (max - min) / min of the sentinel GEMM medians
};

// Throws FitError for unusable input (no measurements, synthetic raw without allow_synthetic, ...).
FitReport fit_run(const RawRun& run, const ProfileDoc& datasheet, const FitOptions& opt);

// A kind: derived profile for `target` (a datasheet profile): the fitted alphas and efficiencies are kept,
// peaks, bandwidth and SMs are the target's; each measured point is scaled by the ratio of the roofline
// model on the target to the model on the measured GPU (so measured non-idealities carry over).
FitReport derive_profile(const FitReport& measured, const ProfileDoc& target, const std::string& id);

// Text table of held-out errors, one line per profile table.
std::string format_report(const FitReport& r);

std::string slug(const std::string& s);

}  // namespace moesim::calibrate
