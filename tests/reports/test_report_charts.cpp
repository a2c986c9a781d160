// Issue 15 points 4 and 5 on a hand-built result (tests/reports/report_fixture.hpp): the HTML report's charts
// (element counts derived from the fixture by hand, well-formed SVG, nothing fetched from the network) and the
// Perfetto trace's flows and counters (trace-event format rules, counts derived by hand).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "reports/html_charts.hpp"
#include "reports/reports.hpp"
#include "report_fixture.hpp"

using moesim::testing::fixture_result;
using moesim::testing::occurrences;

TEST_CASE("html charts: a stacked bar per variant, a segment per class with time > 0", "[reports][html]") {
  const moesim::RunResult r = fixture_result();
  const std::string html = moesim::reports::html_report(r);
  CHECK(moesim::testing::svg_problems(html).empty());
  CHECK(occurrences(html, "<svg class=\"opclass-chart\"") == 1);
  CHECK(occurrences(html, "class=\"opclass-bar\"") == 2);
  // base: attention, dispatch, expert, combine (cast is 0); the other variant has combine 0 too: 4 + 3.
  CHECK(occurrences(html, "class=\"opclass-seg\"") == 7);
  CHECK_THAT(html, Catch::Contains("slow &amp; &quot;quoted&quot;: expert 2.25 ms"));
}

TEST_CASE("html charts: tokens heat map has MoE layers x ranks cells, mean over steps", "[reports][html]") {
  const std::string html = moesim::reports::html_report(fixture_result());
  // Per variant layers 1 and 2 (layer 0 receives nothing: dense) x 4 ranks = 8 cells; 2 variants.
  CHECK(occurrences(html, "<svg class=\"tokens-map\"") == 2);
  CHECK(occurrences(html, "class=\"tokens-cell\"") == 16);
  // Rank 3 of layer 1: (400 + 410) / 2 = 405 pairs; the layer mean is (105 + 205 + 305 + 405) / 4 = 255,
  // 405 / 255 = 1.588... -> 1.59x, red at 0.588 of full: 255 - (255 - (178, 24, 43)) x 0.588 = (210, 119, 130).
  // Rank 0: 105 / 255 = 0.412x, blue at 0.588: 255 - (255 - (33, 102, 172)) x 0.588 = (124, 165, 206).
  CHECK_THAT(html, Catch::Contains("layer 1 rank 3: 405.0 pairs received, 1.59x the layer mean"));
  CHECK_THAT(html, Catch::Contains("fill=\"rgb(210,119,130)\"><title>layer 1 rank 3"));
  CHECK_THAT(html, Catch::Contains("fill=\"rgb(124,165,206)\"><title>layer 1 rank 0: 105.0 pairs received, 0.41x"));
  CHECK_THAT(html, !Catch::Contains("layer 0 rank"));
}

TEST_CASE("html charts: the timeline draws each forward op of the layer in step 0", "[reports][html]") {
  const moesim::RunResult r = fixture_result();
  // Default: the first layer with a forward dispatch in step 0 is layer 1 (layer 0 is dense).
  CHECK(moesim::reports::html::default_timeline_layer(r) == 1);
  const std::string html = moesim::reports::html_report(r);
  CHECK_THAT(html, Catch::Contains("<h2>Timeline of layer 1</h2>"));
  CHECK(occurrences(html, "<svg class=\"timeline\"") == 2);
  // Step 0, layer 1, forward: 4 attention + 4 dispatch + 1 all-gather + 4 expert + 4 combine = 17 per variant.
  REQUIRE(moesim::testing::fwd_ops_of_layer(r.variants[0], 1) == 17);
  CHECK(occurrences(html, "class=\"gantt-op\"") == 2 * 17);
  // Ranks with ops on both streams get two lanes: 4 ranks x (compute, comm).
  CHECK(occurrences(html, "text-anchor=\"end\">r0 comm</text>") == 2);
  // Layer 0 asked for: rank 0's one attention op per variant.
  const std::string l0 = moesim::reports::html_report(r, 0);
  CHECK_THAT(l0, Catch::Contains("<h2>Timeline of layer 0</h2>"));
  CHECK(occurrences(l0, "class=\"gantt-op\"") == 2);
  // A layer no variant has: the section says so instead of drawing an empty chart.
  const std::string l7 = moesim::reports::html_report(r, 7);
  CHECK(occurrences(l7, "class=\"gantt-op\"") == 0);
  CHECK(occurrences(l7, "No forward op of layer 7 in step 0 in this variant.") == 2);
  CHECK(moesim::testing::svg_problems(l7).empty());
}

TEST_CASE("html charts: no timeline without events, and nothing loaded from the network", "[reports][html]") {
  moesim::RunResult r = fixture_result();
  for (auto& v : r.variants) v.events.clear();
  const std::string html = moesim::reports::html_report(r);
  CHECK_THAT(html, !Catch::Contains("Timeline of layer"));
  CHECK(occurrences(html, "class=\"tokens-cell\"") == 16);
  for (const std::string& page : {html, moesim::reports::html_report(fixture_result())}) {
    CHECK(page.find("<script") == std::string::npos);
    CHECK(page.find("https://") == std::string::npos);
    // The only http URL is the SVG namespace name (an identifier, never fetched).
    CHECK(occurrences(page, "http://") == occurrences(page, "xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(page.find(" src=") == std::string::npos);
    CHECK(page.find("href=") == std::string::npos);
  }
}

TEST_CASE("html charts: identical input gives identical bytes", "[reports][html]") {
  CHECK(moesim::reports::html_report(fixture_result(), 1) == moesim::reports::html_report(fixture_result(), 1));
}

TEST_CASE("perfetto trace: flows from each dispatch to the experts it feeds, valid trace events", "[reports]") {
  const moesim::RunResult r = fixture_result();
  const auto j = nlohmann::json::parse(moesim::reports::perfetto_trace(r));
  std::size_t flows = 0, counters = 0;
  CHECK(moesim::testing::trace_problems(j, &flows, &counters).empty());
  // Per layer instance: expert on rank 0 fed by ranks 1 and 3, rank 1 by 0 and 3, rank 2 by 0 and 3, rank 3 by
  // none = 6 arrows (rank 0's through its all-gather). 3 instances (step 0 fwd and bwd, step 1 fwd) x 2 variants.
  CHECK(flows == 36);
  CHECK(j["otherData"]["flows"] == 36);
  CHECK(j["otherData"]["flows_left_out"] == 0);
  // Arrow ends: sources on comm threads (dispatch), destinations on compute threads (expert).
  std::size_t s_on_comm = 0, f_on_compute = 0;
  std::map<std::pair<int, int>, std::string> thread;
  for (const auto& e : j["traceEvents"])
    if (e["ph"] == "M" && e["name"] == "thread_name") thread[{e["pid"], e["tid"]}] = e["args"]["name"];
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "s") s_on_comm += thread[{e["pid"], e["tid"]}].find("comm") != std::string::npos;
    if (e["ph"] == "f") f_on_compute += thread[{e["pid"], e["tid"]}].find("compute") != std::string::npos;
  }
  CHECK(s_on_comm == 36);
  CHECK(f_on_compute == 36);
  // Counters: every rank moves bytes (the 4 busiest are all 4); each rank's dispatch starts and ends 3 times.
  CHECK(counters == 2 * 4 * 6);
  // Rank 3 sends 3 x 100 B and receives nothing: its first point is sent 300, received 0; the next one 0, 0.
  std::vector<nlohmann::json> rank3;
  for (const auto& e : j["traceEvents"])
    if (e["ph"] == "C" && e["pid"] == 1 && e["name"] == "rank 3 bytes of collectives in progress") rank3.push_back(e);
  REQUIRE(rank3.size() == 6);
  CHECK(rank3[0]["ts"].get<double>() == 1400.0);  // dispatch start 1e-3 + 4e-4 s
  CHECK(rank3[0]["args"]["sent_B"].get<double>() == 300.0);
  CHECK(rank3[0]["args"]["received_B"].get<double>() == 0.0);
  CHECK(rank3[1]["ts"].get<double>() == 1600.0);
  CHECK(rank3[1]["args"]["sent_B"].get<double>() == 0.0);
}

TEST_CASE("trace validator catches broken traces", "[reports]") {
  using nlohmann::json;
  const json ok = json::parse(R"({"traceEvents":[
    {"name":"a","ph":"X","ts":0,"dur":2,"pid":1,"tid":1},{"name":"b","ph":"X","ts":3,"dur":2,"pid":1,"tid":2},
    {"name":"f","ph":"s","id":1,"ts":1,"pid":1,"tid":1},{"name":"f","ph":"f","bp":"e","id":1,"ts":4,"pid":1,"tid":2}]})");
  CHECK(moesim::testing::trace_problems(ok).empty());
  json back = ok;
  back["traceEvents"][3]["ts"] = 0.5;  // before its start, and outside slice b
  CHECK_FALSE(moesim::testing::trace_problems(back).empty());
  json unpaired = ok;
  unpaired["traceEvents"].erase(3);
  CHECK_FALSE(moesim::testing::trace_problems(unpaired).empty());
  json negative = ok;
  negative["traceEvents"][0]["dur"] = -1;
  CHECK_FALSE(moesim::testing::trace_problems(negative).empty());
  json no_tid = ok;
  no_tid["traceEvents"][0].erase("tid");
  CHECK_FALSE(moesim::testing::trace_problems(no_tid).empty());
  json text_counter = ok;
  text_counter["traceEvents"].push_back(json::parse(R"({"name":"c","ph":"C","ts":0,"pid":1,"tid":0,"args":{"x":"1"}})"));
  CHECK_FALSE(moesim::testing::trace_problems(text_counter).empty());
  CHECK(moesim::testing::svg_problems("<svg><rect></svg>") != "");
  CHECK(moesim::testing::svg_problems("<svg><g><rect/></g></svg>").empty());
}
