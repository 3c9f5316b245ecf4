// infer_test.cpp: mapping inference from a small nested sample.
#include <gtest/gtest.h>

#include "mongo_river/mapping/infer.hpp"
#include "mongo_river/mapping/names.hpp"
#include "test_bson.hpp"

namespace mongo_river::mapping {
namespace {

using test::Doc;

// Infer infers a mapping from Extended JSON documents.
Mapping Infer(const std::vector<std::string> &json, InferOptions options = {}) {
	std::vector<mongo::Bson> docs;
	for (const std::string &text : json)
		docs.push_back(Doc(text));
	return InferMapping(docs, options);
}

// TypeOf returns the type of a column, or "<none>".
std::string TypeOf(const std::vector<Column> &columns, const std::string &name) {
	const Column *column = FindColumn(columns, name);
	return column ? column->type : "<none>";
}

TEST(InferMapping, NestedSample) {
	InferOptions options;
	options.table = "posts";
	Mapping m = Infer(
		{
			R"({"_id": {"$oid": "5f1d7a3e9b1e8a0012345671"}, "title": "A", "n": 1, "author": {"name": "Ann", "age": 30},
	            "tags": ["a", "b"], "comments": [{"user": "u", "text": "t", "pos": 1}], "v": 1})",
			R"({"_id": {"$oid": "5f1d7a3e9b1e8a0012345672"}, "title": "B", "n": {"$numberLong": "5"},
	            "author": {"name": "Bob"}, "tags": [], "score": 1.5, "v": "x", "created": {"$date": {"$numberLong": "0"}},
	            "mixed": true, "ratio": {"$numberDecimal": "1.5"}})",
			R"({"_id": {"$oid": "5f1d7a3e9b1e8a0012345673"}, "n": 2, "score": 2, "mixed": 5, "ratio": 2,
	            "deep": {"a": {"b": {"c": 1}, "x": 1}}, "counts": {"2024-01-01": 1, "2024-01-02": 2},
	            "document": 1, "$weird": 1, "empty": {}, "nothing": null, "nums": [1, 2.5], "mess": [1, "a", true],
	            "uid": {"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}},
	            "key.dot": 1, "matrix": [[1]]})",
		},
		options);
	EXPECT_EQ(m.pk, "id");
	ASSERT_FALSE(m.columns.empty());
	EXPECT_EQ(m.columns[0].name, "id");
	EXPECT_EQ(m.columns[0].path, (Path{"_id"}));
	EXPECT_EQ(m.columns[0].type, "text");
	EXPECT_EQ(m.columns[0].format, Format::kDefault);
	EXPECT_EQ(m.document, "document");
	EXPECT_EQ(TypeOf(m.columns, "title"), "text");
	EXPECT_EQ(TypeOf(m.columns, "n"), "bigint");
	EXPECT_EQ(TypeOf(m.columns, "author_name"), "text");
	EXPECT_EQ(FindColumn(m.columns, "author_name")->path, (Path{"author", "name"}));
	EXPECT_EQ(TypeOf(m.columns, "author_age"), "integer");
	EXPECT_EQ(TypeOf(m.columns, "tags"), "text[]");
	EXPECT_EQ(TypeOf(m.columns, "v"), "text");
	EXPECT_EQ(TypeOf(m.columns, "score"), "double precision");
	EXPECT_EQ(TypeOf(m.columns, "ratio"), "numeric");
	EXPECT_EQ(TypeOf(m.columns, "created"), "timestamptz");
	EXPECT_EQ(TypeOf(m.columns, "mixed"), "jsonb");
	EXPECT_EQ(TypeOf(m.columns, "deep_a_b"), "jsonb") << "documents at depth 3 stay jsonb";
	EXPECT_EQ(TypeOf(m.columns, "deep_a_x"), "integer");
	EXPECT_EQ(TypeOf(m.columns, "counts"), "jsonb") << "date-like keys are data";
	EXPECT_EQ(TypeOf(m.columns, "document_2"), "integer");
	EXPECT_EQ(TypeOf(m.columns, "empty"), "jsonb");
	EXPECT_EQ(TypeOf(m.columns, "nothing"), "text");
	EXPECT_EQ(TypeOf(m.columns, "nums"), "double precision[]");
	EXPECT_EQ(TypeOf(m.columns, "mess"), "text[]") << "any scalar + string widens to text";
	EXPECT_EQ(TypeOf(m.columns, "matrix"), "jsonb");
	EXPECT_EQ(TypeOf(m.columns, "uid"), "uuid");
	EXPECT_EQ(TypeOf(m.columns, "key_dot"), "integer");
	EXPECT_EQ(FindColumn(m.columns, "key_dot")->path, (Path{"key.dot"}));
	EXPECT_EQ(TypeOf(m.columns, "_weird"), "<none>");
	ASSERT_EQ(m.arrays.size(), 1u);
	const ArrayMapping &comments = m.arrays[0];
	EXPECT_EQ(comments.name, "comments");
	EXPECT_EQ(comments.table, "posts_comments");
	EXPECT_EQ(comments.fk, "posts_id");
	EXPECT_EQ(comments.position, "pos");
	EXPECT_EQ(TypeOf(comments.columns, "user"), "text");
	EXPECT_EQ(TypeOf(comments.columns, "text"), "text");
	EXPECT_EQ(TypeOf(comments.columns, "pos_2"), "integer") << "element field named like the position column";

	Mapping again = ParseMapping(SerializeMapping(m));
	EXPECT_TRUE(again == m) << SerializeMapping(m, true);
}

TEST(InferMapping, PkTypeFitsEverySampledId) {
	EXPECT_EQ(Infer({R"({"_id": "a"})", R"({"_id": "b"})"}).columns[0].type, "text");
	Mapping ints = Infer({R"({"_id": 1})", R"({"_id": {"$numberLong": "2"}})"});
	EXPECT_EQ(ints.columns[0].type, "bigint");
	Mapping mixed = Infer({R"({"_id": "a"})", R"({"_id": {"$oid": "5f1d7a3e9b1e8a0012345671"}})"});
	EXPECT_EQ(mixed.columns[0].type, "text");
	EXPECT_EQ(mixed.columns[0].format, Format::kExtendedJson) << "a string could equal an ObjectId's hex";
	Mapping other = Infer({R"({"_id": {"a": 1}})"});
	EXPECT_EQ(other.columns[0].format, Format::kExtendedJson);
	EXPECT_EQ(
		Infer({R"({"_id": {"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}}})"}).columns[0].type,
		"uuid");
	Mapping empty = Infer({});
	ASSERT_EQ(empty.columns.size(), 1u);
	EXPECT_EQ(empty.columns[0].type, "text");
}

TEST(InferMapping, DynamicKeysAndLimits) {
	std::string many = R"({"_id": 1, "m": {)";
	for (int i = 0; i < 21; ++i)
		many += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\": 1";
	many += "}, \"few\": {\"a\": 1}}";
	Mapping m = Infer({many});
	EXPECT_EQ(TypeOf(m.columns, "m"), "jsonb");
	EXPECT_EQ(TypeOf(m.columns, "few_a"), "integer");
	InferOptions options;
	options.dynamic_key_threshold = 30;
	EXPECT_EQ(TypeOf(Infer({many}, options).columns, "m_k20"), "integer");
	options.max_columns = 3;
	EXPECT_EQ(Infer({many}, options).columns.size(), 3u);
	options = {};
	options.max_depth = 1;
	EXPECT_EQ(TypeOf(Infer({many}, options).columns, "few"), "jsonb");
	EXPECT_EQ(TypeOf(Infer({R"({"ids": {"5f1d7a3e9b1e8a0012345671": 1}})"}).columns, "ids"), "jsonb");
}

TEST(InferMapping, KeysThatAreNotUtf8StayInTheDocument) {
	mongo::Bson doc = Doc(R"({"_id": 1, "ok": 2})");
	bson_append_int32(doc.get(), "bad\xff", 4, 3);
	const bson_t *docs[] = {doc.get()};
	Mapping m = InferMapping(docs, 1);
	ASSERT_EQ(m.columns.size(), 2u);
	EXPECT_EQ(m.columns[1].name, "ok");
}

TEST(InferMapping, LongAndCollidingNames) {
	std::string long_key(80, 'k');
	Mapping m = Infer({R"({"A b": 1, "a_b": 2, ")" + long_key + R"(": 3, "id": 4})"});
	EXPECT_EQ(TypeOf(m.columns, "a_b"), "integer");
	EXPECT_EQ(TypeOf(m.columns, "a_b_2"), "integer");
	EXPECT_EQ(TypeOf(m.columns, "id_2"), "integer");
	EXPECT_EQ(TypeOf(m.columns, DefaultIdentifier(long_key)), "integer");
}

} // namespace
} // namespace mongo_river::mapping
