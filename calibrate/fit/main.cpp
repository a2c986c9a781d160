// moesim-calibrate-fit: raw calibration YAML -> moesim-profile/1 (kind measured, optionally derived ones).
// Exit codes: 0 ok, 2 bad input (file and key named on stderr), 1 internal error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "fitter.hpp"
#include "io.hpp"

namespace mc = moesim::calibrate;

int main(int argc, char** argv) {
  CLI::App app{"moesim-calibrate-fit: fit raw calibration measurements into a moesim-profile/1 YAML"};
  std::string raw_path, datasheet_path, out_path, id, derive_for, derived_out, derived_id, check_path;
  mc::FitOptions opt;
  app.add_option("raw", raw_path, "raw YAML written by moesim-calibrate");
  app.add_option("--datasheet", datasheet_path,
                 "datasheet profile (kind: datasheet) of the measured GPU: peaks and bandwidth the fit is relative to");
  app.add_option("-o,--out", out_path, "measured profile to write");
  app.add_option("--id", opt.id, "id of the measured profile (default: <gpu>-measured)");
  app.add_option("--derive-for", derive_for, "datasheet profile of an unmeasured GPU: also write a kind: derived profile");
  app.add_option("--derived-out", derived_out, "where the derived profile goes (default: <target gpu>-derived.yaml beside -o)");
  app.add_option("--derived-id", derived_id, "id of the derived profile (default: <target gpu>-derived)");
  app.add_option("--tile-tokens", opt.tile_tokens, "GEMM tile along tokens for quantisation")->check(CLI::PositiveNumber);
  app.add_option("--tile-n", opt.tile_n, "GEMM tile along n for quantisation")->check(CLI::PositiveNumber);
  app.add_option("--interference-sms", opt.interference_sms,
                 "SMs a communication kernel holds, for overlap_interference (nearest measured point)");
  app.add_flag("--allow-synthetic", opt.allow_synthetic, "accept a synthetic (test) raw file");
  app.add_option("--check-profile", check_path, "only validate a moesim-profile/1 file and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    if (!check_path.empty()) {
      const mc::ProfileDoc p = mc::read_profile_file(check_path);
      std::printf("%s: ok (id %s, kind %s, %zu tables)\n", check_path.c_str(), p.id.c_str(), p.kind.c_str(),
                  p.tables.size());
      return 0;
    }
    if (raw_path.empty() || datasheet_path.empty() || out_path.empty()) {
      std::fprintf(stderr, "error: need RAW, --datasheet and -o (or --check-profile FILE); see --help\n");
      return 2;
    }
    const mc::RawRun run = mc::read_raw_file(raw_path);
    const mc::ProfileDoc ds = mc::read_profile_file(datasheet_path);
    opt.raw_label = std::filesystem::path(raw_path).filename().string();
    const mc::FitReport rep = mc::fit_run(run, ds, opt);
    const std::string measured_text = mc::to_yaml(rep.profile);
    mc::write_file_atomic(out_path, measured_text);
    mc::parse_profile(measured_text, out_path);  // self-check: what we wrote reads back strictly
    std::printf("wrote %s (id %s, kind measured, %zu tables, sentinel drift %.2f %%)\n", out_path.c_str(),
                rep.profile.id.c_str(), rep.profile.tables.size(), rep.sentinel_drift * 100);
    std::fputs(mc::format_report(rep).c_str(), stdout);
    if (!derive_for.empty()) {
      const mc::ProfileDoc target = mc::read_profile_file(derive_for);
      const mc::FitReport der = mc::derive_profile(rep, target, derived_id);
      std::string path = derived_out;
      if (path.empty()) {
        path = (std::filesystem::path(out_path).parent_path() / (mc::slug(target.gpu_name) + "-derived.yaml")).string();
      }
      const std::string derived_text = mc::to_yaml(der.profile);
      mc::write_file_atomic(path, derived_text);
      mc::parse_profile(derived_text, path);
      std::printf("wrote %s (id %s, kind derived from %s, %zu tables)\n", path.c_str(), der.profile.id.c_str(),
                  rep.profile.id.c_str(), der.profile.tables.size());
      for (const auto& n : der.notes) std::printf("note: %s\n", n.c_str());
    }
    return 0;
  } catch (const mc::FitError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
}
