// same_value_test.cpp: verify's comparison of row texts with doubles by value.
#include <gtest/gtest.h>

#include "mongo_river/convert/same_value.hpp"

namespace mongo_river::convert {
namespace {

TEST(SameUpToDoubleText, OldLongDoubleTextEqualsShortestForm) {
	// River 0.2.0 wrote {x: 0.1, y: 1e-7} into jsonb as libbson's %.20g.
	EXPECT_TRUE(SameUpToDoubleText(R"({"x": 0.10000000000000000555, "y": 0.000000099999999999999995475})",
								   R"({"x": 0.1, "y": 0.0000001})"));
	EXPECT_TRUE(SameUpToDoubleText("a\x1f{\"v\": [-2.2000000000000001776, 3]}\x1e", "a\x1f{\"v\": [-2.2, 3]}\x1e"));
	EXPECT_TRUE(SameUpToDoubleText("1152921504606846976", "1152921504606847000")); // 2^60
}

TEST(SameUpToDoubleText, RealDifferencesStay) {
	EXPECT_FALSE(SameUpToDoubleText(R"({"x": 0.10000000000000000555})", R"({"x": 0.2})"));
	EXPECT_FALSE(SameUpToDoubleText(R"({"x": 0.1})", R"({"x": 0.10000000000000001})")); // both short: text decides
	EXPECT_FALSE(SameUpToDoubleText("9007199254740993", "9007199254740992"));           // int64 beyond 2^53
	EXPECT_FALSE(SameUpToDoubleText("9223372036854775807", "9223372036854775806"));     // both long
	EXPECT_FALSE(SameUpToDoubleText(R"({"x": 0.10000000000000000555})", R"({"x": "0.1"})"));
	EXPECT_FALSE(SameUpToDoubleText(R"({"x": 0.10000000000000000555, "y": 1})", R"({"x": 0.1})"));
	EXPECT_FALSE(SameUpToDoubleText("p0.10000000000000000555", "p0.1")); // inside a word: text
	EXPECT_FALSE(SameUpToDoubleText("title", "Title"));
}

} // namespace
} // namespace mongo_river::convert
