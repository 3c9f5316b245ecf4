// names_test.cpp: default identifiers for collections and field paths, and UniqueName.
#include <gtest/gtest.h>

#include <set>

#include "mongo_river/mapping/names.hpp"

namespace mongo_river::mapping {
namespace {

TEST(DefaultIdentifier, LowercasesAndReplacesRuns) {
	EXPECT_EQ(DefaultIdentifier("Orders"), "orders");
	EXPECT_EQ(DefaultIdentifier("author.name"), "author_name");
	EXPECT_EQ(DefaultIdentifier("Order Items!!"), "order_items_");
	EXPECT_EQ(DefaultIdentifier("a..b"), "a_b");
	EXPECT_EQ(DefaultIdentifier("_id"), "_id");
	EXPECT_EQ(DefaultIdentifier("a__b"), "a__b");
	EXPECT_EQ(DefaultIdentifier("café"), "caf_");
	EXPECT_EQ(DefaultIdentifier("select"), "select");
}

TEST(DefaultIdentifier, LeadingDigitAndEmpty) {
	EXPECT_EQ(DefaultIdentifier("2fa"), "_2fa");
	EXPECT_EQ(DefaultIdentifier(""), "_");
	EXPECT_EQ(DefaultIdentifier("..."), "_");
}

TEST(DefaultIdentifier, LongNamesKeepDistinctHashes) {
	std::string a(100, 'a');
	std::string b = a + "b";
	std::string ia = DefaultIdentifier(a);
	std::string ib = DefaultIdentifier(b);
	EXPECT_EQ(ia.size(), 63u);
	EXPECT_EQ(ib.size(), 63u);
	EXPECT_NE(ia, ib);
	EXPECT_EQ(ia.substr(0, 54), std::string(54, 'a'));
	EXPECT_EQ(ia[54], '_');
	char expected[16];
	std::snprintf(expected, sizeof expected, "_%08x", Fnv1a32(a));
	EXPECT_EQ(ia.substr(54), expected);
	EXPECT_EQ(DefaultIdentifier(a), ia) << "deterministic";
	EXPECT_EQ(DefaultIdentifier(std::string(63, 'x')), std::string(63, 'x'));
}

TEST(Fnv1a32, KnownVectors) {
	EXPECT_EQ(Fnv1a32(""), 0x811c9dc5u);
	EXPECT_EQ(Fnv1a32("a"), 0xe40c292cu);
	EXPECT_EQ(Fnv1a32("foobar"), 0xbf9cf968u);
}

TEST(ColumnNameForPath, JoinsKeys) {
	EXPECT_EQ(ColumnNameForPath({"author", "name"}), "author_name");
	EXPECT_EQ(ColumnNameForPath({"key.with.dots", "x"}), "key_with_dots_x");
}

TEST(UniqueName, AppendsCounters) {
	std::set<std::string> taken = {"id", "id_2"};
	auto is_taken = [&taken](const std::string &n) { return taken.count(n) > 0; };
	EXPECT_EQ(UniqueName("name", is_taken), "name");
	EXPECT_EQ(UniqueName("id", is_taken), "id_3");
	std::string long_name(63, 'z');
	taken.insert(long_name);
	std::string unique = UniqueName(long_name, is_taken);
	EXPECT_EQ(unique, std::string(61, 'z') + "_2");
	EXPECT_LE(unique.size(), 63u);
}

TEST(TruncateIdentifier, KeepsUtf8Characters) {
	std::string name = std::string(62, 'a') + "é";
	EXPECT_EQ(TruncateIdentifier(name), std::string(62, 'a'));
}

} // namespace
} // namespace mongo_river::mapping
