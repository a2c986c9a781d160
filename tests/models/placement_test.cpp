#include <catch2/catch.hpp>

#include "models/placement.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;

TEST_CASE("contiguous and round-robin placement", "[models][placement]") {
  Placement c(8, 4);  // 2 experts per rank
  CHECK(c.rank_of_expert(0) == 0);
  CHECK(c.rank_of_expert(3) == 1);
  CHECK(c.experts_of_rank(3) == std::vector<int>{6, 7});
  Placement r(8, 4, PlacementScheme::round_robin);
  CHECK(r.rank_of_expert(5) == 1);  // 5 mod 4
  CHECK(r.experts_of_rank(1) == std::vector<int>{1, 5});
  CHECK_FALSE(c.replicated());
}

TEST_CASE("replicated placement splits tokens among replicas", "[models][placement]") {
  // E = 6, R = 4: S = ceil(6/4) = 2 slots per rank, slots 0..7 hold experts 0,1,2,3,4,5,0,1;
  // contiguous: rank 3 holds slots 6,7 = experts 0,1, so experts 0 and 1 live on ranks {0, 3}.
  Placement p(6, 4, PlacementScheme::contiguous, true);
  REQUIRE(p.replicated());
  CHECK(p.ranks_of_expert(0) == std::vector<int>{0, 3});
  CHECK(p.experts_of_rank(3) == std::vector<int>{0, 1});
  // From rank 1 (no local replica) 5 tokens to expert 0: list rotated to start at 1 mod 2 = 1 -> [3, 0];
  // rank 3 gets floor(5/2) + 1 = 3, rank 0 gets 2.
  int64_t per[4] = {0, 0, 0, 0};
  p.distribute(1, 0, 5, per);
  CHECK(per[0] == 2);
  CHECK(per[3] == 3);
  int64_t nth[4] = {0, 0, 0, 0};
  for (int n = 0; n < 5; ++n) ++nth[p.dest_of_nth(1, 0, n)];
  CHECK(nth[0] == 2);
  CHECK(nth[3] == 3);
  // From rank 3 the local replica takes all.
  int64_t loc[4] = {0, 0, 0, 0};
  p.distribute(3, 0, 5, loc);
  CHECK(loc[3] == 5);
}

TEST_CASE("EP degree must divide the routed experts", "[models][placement][bad]") {
  Doc d("ep: 3\n");
  decode_placement(YamlView(), 8, 3, d.root.at("ep"));
  CHECK(d.diags.str() ==
        "scenario.yaml:1:5: ep: EP degree must divide the 8 routed experts (or set placement.replicate: true) "
        "(got 3)\n");
  CHECK_THROWS_AS(Placement(8, 3), std::invalid_argument);
  Doc ok("ep: 3\nplacement: {replicate: true}\n");
  Placement p = decode_placement(ok.root.at("placement"), 8, 3, ok.root.at("ep"));
  CHECK(ok.diags.empty());
  CHECK(p.ranks() == 3);
}
