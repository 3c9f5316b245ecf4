// mongo_diff_test.cpp: $v:2 update diffs: applying them (as mongod's document_diff_applier.cpp
// does) and describing them (as change_stream_document_diff_parser.cpp does). The expected results
// follow the rules of those two files in mongodb/mongo: u sets in place or appends, i appends
// (moving a present field to the end), d deletes, s<field> recurses; an array diff truncates or
// pads to l, sets u<i>, recurses into s<i>, and writes null where the pre-image has the wrong type
// or is too short.
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/diff.hpp"

namespace mongo_river::mongo {
namespace {

Bson J(const std::string &json) {
	return FromJson(json, "test JSON");
}

std::string Apply(const std::string &doc, const std::string &diff) {
	return ToRelaxedJson(ApplyDiff(J(doc).get(), J(diff).get()).get());
}

std::string Canon(const std::string &json) {
	return ToRelaxedJson(J(json).get());
}

TEST(ApplyDiff, UpdateInPlaceKeepsFieldOrder) {
	EXPECT_EQ(Apply(R"({"a":1,"b":2,"c":3})", R"({"u":{"b":20}})"), Canon(R"({"a":1,"b":20,"c":3})"));
}

TEST(ApplyDiff, UpdateOfAbsentFieldAppends) {
	EXPECT_EQ(Apply(R"({"a":1})", R"({"u":{"z":5}})"), Canon(R"({"a":1,"z":5})"));
}

TEST(ApplyDiff, InsertMovesFieldToTheEnd) {
	EXPECT_EQ(Apply(R"({"a":1,"b":2,"c":3})", R"({"i":{"a":10,"n":1}})"), Canon(R"({"b":2,"c":3,"a":10,"n":1})"));
}

TEST(ApplyDiff, UpdatesAppendBeforeInserts) {
	EXPECT_EQ(Apply(R"({"a":1})", R"({"u":{"x":1},"i":{"y":2}})"), Canon(R"({"a":1,"x":1,"y":2})"));
}

TEST(ApplyDiff, DeleteRemovesField) {
	EXPECT_EQ(Apply(R"({"a":1,"b":2})", R"({"d":{"a":false}})"), Canon(R"({"b":2})"));
	EXPECT_EQ(Apply(R"({"b":2})", R"({"d":{"a":false}})"), Canon(R"({"b":2})")); // absent: nothing to do
}

TEST(ApplyDiff, SubDiffOnEmbeddedDocument) {
	EXPECT_EQ(Apply(R"({"a":{"x":1,"y":2},"b":1})", R"({"sa":{"u":{"x":5},"d":{"y":false}}})"),
			  Canon(R"({"a":{"x":5},"b":1})"));
}

TEST(ApplyDiff, SubDiffOnWrongTypeWritesNull) {
	EXPECT_EQ(Apply(R"({"a":5})", R"({"sa":{"u":{"x":1}}})"), Canon(R"({"a":null})"));
	EXPECT_EQ(Apply(R"({"a":{"x":1}})", R"({"sa":{"a":true,"u0":1}})"), Canon(R"({"a":null})"));
}

TEST(ApplyDiff, SubDiffOnMissingFieldIsIgnored) {
	EXPECT_EQ(Apply(R"({"b":1})", R"({"sa":{"u":{"x":1}}})"), Canon(R"({"b":1})"));
}

TEST(ApplyDiff, ArraySetElement) {
	EXPECT_EQ(Apply(R"({"arr":[1,2,3]})", R"({"sarr":{"a":true,"u1":20}})"), Canon(R"({"arr":[1,20,3]})"));
}

TEST(ApplyDiff, ArrayAppendLikePush) {
	EXPECT_EQ(Apply(R"({"arr":[1,2]})", R"({"sarr":{"a":true,"u2":3}})"), Canon(R"({"arr":[1,2,3]})"));
}

TEST(ApplyDiff, ArrayTruncateLikePop) {
	EXPECT_EQ(Apply(R"({"arr":[1,2,3,4]})", R"({"sarr":{"a":true,"l":2}})"), Canon(R"({"arr":[1,2]})"));
}

TEST(ApplyDiff, ArrayGrowPadsWithNull) {
	EXPECT_EQ(Apply(R"({"arr":[1]})", R"({"sarr":{"a":true,"u3":4}})"), Canon(R"({"arr":[1,null,null,4]})"));
	EXPECT_EQ(Apply(R"({"arr":[1,2,3]})", R"({"sarr":{"a":true,"l":5,"u3":9}})"), Canon(R"({"arr":[1,2,3,9,null]})"));
}

TEST(ApplyDiff, PaddingPastSixteenMebibytesIsRefused) {
	// A few bytes of diff asking for element 2,352,228 of an empty array: mongod could never have
	// written it (the padded document would exceed 16 MiB), so it is malformed (found by fuzz_source).
	EXPECT_THROW(ApplyDiff(J(R"({"m":[]})").get(), J(R"({"sm":{"a":true,"u2352228":[4]}})").get()), Error);
	EXPECT_EQ(Apply(R"({"m":[]})", R"({"sm":{"a":true,"u2":0}})"), Canon(R"({"m":[null,null,0]})"));
}

TEST(ApplyDiff, ArraySubDiffIntoElements) {
	EXPECT_EQ(Apply(R"({"arr":[{"x":1},{"x":2}]})", R"({"sarr":{"a":true,"s1":{"u":{"x":20}}}})"),
			  Canon(R"({"arr":[{"x":1},{"x":20}]})"));
	EXPECT_EQ(Apply(R"({"m":[[1,2],[3]]})", R"({"sm":{"a":true,"s0":{"a":true,"l":1}}})"), Canon(R"({"m":[[1],[3]]})"));
}

TEST(ApplyDiff, ArraySubDiffBeyondPreImageWritesNull) {
	EXPECT_EQ(Apply(R"({"arr":[1]})", R"({"sarr":{"a":true,"s2":{"u":{"x":1}}}})"), Canon(R"({"arr":[1,null,null]})"));
	EXPECT_EQ(Apply(R"({"arr":[1,5]})", R"({"sarr":{"a":true,"s1":{"u":{"x":1}}}})"), Canon(R"({"arr":[1,null]})"));
}

TEST(ApplyDiff, DeepNesting) {
	EXPECT_EQ(Apply(R"({"_id":1,"a":{"b":{"c":[0,{"d":1}]}},"z":0})",
					R"({"u":{"z":1},"sa":{"sb":{"sc":{"a":true,"s1":{"i":{"e":2}}}}}})"),
			  Canon(R"({"_id":1,"a":{"b":{"c":[0,{"d":1,"e":2}]}},"z":1})"));
}

TEST(ApplyDiff, RejectsMalformedDiffs) {
	EXPECT_THROW(ApplyDiff(J(R"({"a":1})").get(), J(R"({"u":{"a":1},"d":{"a":false}})").get()), Error);
	EXPECT_THROW(ApplyDiff(J(R"({"a":1})").get(), J(R"({"x":{"a":1}})").get()), Error);
	EXPECT_THROW(ApplyDiff(J(R"({"a":[1]})").get(), J(R"({"sa":{"a":true,"q1":1}})").get()), Error);
	EXPECT_THROW(ApplyDiff(J(R"({"a":[1]})").get(), J(R"({"sa":{"a":true,"uX":1}})").get()), Error);
	EXPECT_THROW(ApplyDiff(J(R"({"a":1})").get(), J(R"({"u":5})").get()), Error);
	EXPECT_THROW(ApplyDiff(J(R"({"a":1})").get(), J(R"({"b":{"a":{"o":0}}})").get()), Error);
}

TEST(ApplyDiff, RefusesHostileSizesAndDepths) {
	EXPECT_THROW(ApplyDiff(J(R"({"a":[1]})").get(), J(R"({"sa":{"a":true,"u4000000000":1}})").get()), Error);
	EXPECT_THROW(ApplyDiff(J(R"({"a":[1]})").get(), J(R"({"sa":{"a":true,"l":4000000000}})").get()), Error);
	// Nest {"a": ...} and {"sa": ...} 300 levels deep (deeper than the JSON parser allows).
	Bson deep_doc = J(R"({"a":1})"), deep_diff = J(R"({"u":{"x":1}})");
	for (int k = 0; k < 300; ++k) {
		Bson doc = NewBson(), diff = NewBson();
		BSON_APPEND_DOCUMENT(doc.get(), "a", deep_doc.get());
		BSON_APPEND_DOCUMENT(diff.get(), "sa", deep_diff.get());
		deep_doc = std::move(doc);
		deep_diff = std::move(diff);
		if (k == 150) {
			EXPECT_NO_THROW(ApplyDiff(deep_doc.get(), deep_diff.get()));
			EXPECT_NO_THROW(ParseDiff(deep_diff.get()));
		}
	}
	EXPECT_THROW(ApplyDiff(deep_doc.get(), deep_diff.get()), Error);
	EXPECT_THROW(ParseDiff(deep_diff.get()), Error);
}

TEST(ParseDiff, DescribesLikeAChangeStream) {
	UpdateDescription d = ParseDiff(
		J(R"({"u":{"a":1},"i":{"b":2},"d":{"c":false},"sx":{"u":{"y":1}},"sarr":{"a":true,"l":2,"u1":5,"s3":{"u":{"z":1}}}})")
			.get());
	EXPECT_EQ(ToRelaxedJson(d.updated_fields.get()), Canon(R"({"a":1,"b":2,"x.y":1,"arr.1":5,"arr.3.z":1})"));
	ASSERT_EQ(d.removed_fields.size(), 1u);
	EXPECT_EQ(d.removed_fields[0], "c");
	ASSERT_EQ(d.truncated_arrays.size(), 1u);
	EXPECT_EQ(d.truncated_arrays[0].field, "arr");
	EXPECT_EQ(d.truncated_arrays[0].new_size, 2);
}

TEST(ParseDiff, NestedRemovalsAndArrays) {
	UpdateDescription d = ParseDiff(J(R"({"sdoc":{"d":{"old":false},"stags":{"a":true,"u1":"x"}}})").get());
	EXPECT_EQ(ToRelaxedJson(d.updated_fields.get()), Canon(R"({"doc.tags.1":"x"})"));
	ASSERT_EQ(d.removed_fields.size(), 1u);
	EXPECT_EQ(d.removed_fields[0], "doc.old");
	EXPECT_TRUE(d.truncated_arrays.empty());
}

TEST(ParseModifierUpdate, SetAndUnset) {
	UpdateDescription d = ParseModifierUpdate(J(R"({"$v":1,"$set":{"a.b":1,"c":"x"},"$unset":{"z":true}})").get());
	EXPECT_EQ(ToRelaxedJson(d.updated_fields.get()), Canon(R"({"a.b":1,"c":"x"})"));
	ASSERT_EQ(d.removed_fields.size(), 1u);
	EXPECT_EQ(d.removed_fields[0], "z");
}

} // namespace
} // namespace mongo_river::mongo
