// mapping_test.cpp: mapping parsing, every validation error, canonical serialisation, targets.
#include <gtest/gtest.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace mongo_river::mapping {
namespace {

const char *const kExample = R"({
  "pk": "id",
  "columns": {
    "id":          {"path": "_id",          "type": "text"},
    "title":       {"path": "title",        "type": "text"},
    "author_name": {"path": "author.name",  "type": "text"},
    "odd":         {"path": ["key.with.dots", "x"], "type": "text"},
    "tags":        {"path": "tags",         "type": "text[]"}
  },
  "arrays": {
    "comments": {"path": "comments", "table": "post_comments", "fk": "post_id",
                 "position": "pos",
                 "columns": {"user": {"path": "user", "type": "text"},
                             "body": {"path": "comment", "type": "text"}}}
  },
  "document": "doc"
})";

// ExpectError parses json and checks the Error's SQLSTATE and that its message contains needle.
void ExpectError(const std::string &json, const std::string &sqlstate, const std::string &needle,
				 const std::string &hint_needle = {}) {
	try {
		ParseMapping(json);
		ADD_FAILURE() << "expected an Error for " << json;
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), sqlstate) << e.Message();
		EXPECT_NE(e.Message().find(needle), std::string::npos) << "message: " << e.Message() << "\nwanted: " << needle;
		EXPECT_FALSE(e.Hint().empty()) << e.Message();
		if (!hint_needle.empty()) {
			EXPECT_NE(e.Hint().find(hint_needle), std::string::npos) << e.Hint();
		}
	}
}

// WithColumn returns a minimal valid mapping plus one more column spec (raw JSON).
std::string WithColumn(const std::string &name, const std::string &spec) {
	return R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, ")" + name + "\": " + spec + "}}";
}

TEST(ParseMapping, ArchitectureExample) {
	Mapping m = ParseMapping(kExample);
	EXPECT_EQ(m.pk, "id");
	ASSERT_EQ(m.columns.size(), 5u);
	EXPECT_EQ(m.columns[0].name, "id");
	EXPECT_EQ(m.columns[2].path, (Path{"author", "name"}));
	EXPECT_EQ(m.columns[3].path, (Path{"key.with.dots", "x"}));
	EXPECT_EQ(m.columns[4].type, "text[]");
	ASSERT_EQ(m.arrays.size(), 1u);
	EXPECT_EQ(m.arrays[0].table, "post_comments");
	EXPECT_EQ(m.arrays[0].fk, "post_id");
	EXPECT_EQ(m.arrays[0].position, "pos");
	ASSERT_EQ(m.arrays[0].columns.size(), 2u);
	EXPECT_EQ(m.arrays[0].columns[1].path, (Path{"comment"}));
	EXPECT_EQ(m.document, "doc");
}

TEST(SerializeMapping, CanonicalAndRoundTrips) {
	Mapping m = ParseMapping(kExample);
	std::string canonical = SerializeMapping(m);
	EXPECT_EQ(canonical.substr(0, 60), R"({"pk":"id","columns":{"id":{"path":"_id","type":"text"},"tit)");
	EXPECT_NE(canonical.find(R"("odd":{"path":["key.with.dots","x"],"type":"text"})"), std::string::npos) << canonical;
	EXPECT_NE(
		canonical.find(R"("comments":{"path":"comments","table":"post_comments","fk":"post_id","position":"pos",)"),
		std::string::npos)
		<< canonical;
	Mapping again = ParseMapping(canonical);
	EXPECT_TRUE(again == m);
	EXPECT_EQ(SerializeMapping(again), canonical);
	EXPECT_EQ(ParseMapping(SerializeMapping(m, true)), m);
}

TEST(ParseMapping, FormatsRoundTrip) {
	Mapping m = ParseMapping(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text", "format": "extjson"},
	    "has_x": {"path": "x", "type": "boolean", "format": "presence"}}})");
	EXPECT_EQ(m.columns[0].format, Format::kExtendedJson);
	EXPECT_EQ(m.columns[1].format, Format::kPresence);
	EXPECT_EQ(ParseMapping(SerializeMapping(m)), m);
}

TEST(ParseMapping, ShapeErrors) {
	ExpectError("[1]", "22023", "mapping must be an object");
	ExpectError("{", "22P02", "mapping is not valid JSON");
	ExpectError(R"({"columns": {}})", "22023", "mapping.pk is missing");
	ExpectError(R"({"pk": 1, "columns": {}})", "22023", "mapping.pk must be a string");
	ExpectError(R"({"pk": "id"})", "22023", "mapping.columns is missing");
	ExpectError(R"({"pk": "id", "columns": []})", "22023", "mapping.columns must be an object");
	ExpectError(WithColumn("t", "\"text\""), "22023", "mapping.columns.t must be an object");
	ExpectError(WithColumn("t", R"({"type": "text"})"), "22023", "mapping.columns.t.path is missing");
	ExpectError(WithColumn("t", R"({"path": 3, "type": "text"})"), "22023", "mapping.columns.t.path must be a string");
	ExpectError(WithColumn("t", R"({"path": ["a", 2], "type": "text"})"), "22023",
				"mapping.columns.t.path[1] must be a string");
	ExpectError(WithColumn("t", R"({"path": "t"})"), "22023", "mapping.columns.t.type is missing");
	ExpectError(WithColumn("t", R"({"path": "t", "type": ["text"]})"), "22023",
				"mapping.columns.t.type must be a string");
	ExpectError(WithColumn("t", R"({"path": "t", "type": "text", "format": "hex"})"), "22023",
				"mapping.columns.t.format has an unknown value \"hex\"");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}, "document": ""})", "22023",
				"mapping.document is empty");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}, "arrays": []})", "22023",
				"mapping.arrays must be an object");
}

TEST(ParseMapping, UnknownKeysAreRefusedWithAllowedList) {
	ExpectError(R"({"pk": "id", "colums": {}})", "22023", "mapping.colums is not a known key", "\"columns\"");
	ExpectError(WithColumn("t", R"({"path": "t", "type": "text", "nullable": true})"), "22023",
				"mapping.columns.t.nullable is not a known key", "\"format\"");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}},
	    "arrays": {"a": {"path": "a", "table": "t", "fk": "f", "pos": "p"}}})",
				"22023", "mapping.arrays.a.pos is not a known key", "\"position\"");
}

TEST(ParseMapping, PkRules) {
	ExpectError(R"({"pk": "key", "columns": {"id": {"path": "_id", "type": "text"}}})", "42703",
				"mapping.pk names column \"key\", which is not among the columns");
	ExpectError(R"({"pk": "", "columns": {"id": {"path": "_id", "type": "text"}}})", "22023", "mapping.pk is empty");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text[]"}}})", "42804",
				"mapping.columns.id.type cannot be the primary key's type");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "json"}}})", "42804",
				"mapping.columns.id.type cannot be the primary key's type");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "boolean", "format": "presence"}}})", "22023",
				"cannot be used for the primary key");
}

TEST(ParseMapping, ColumnNameRules) {
	ExpectError(WithColumn("", R"({"path": "t", "type": "text"})"), "22023", "mapping.columns. is an empty name");
	std::string long_name(64, 'n');
	ExpectError(WithColumn(long_name, R"({"path": "t", "type": "text"})"), "42602", "longer than 63 bytes");
	EXPECT_NO_THROW(ParseMapping(WithColumn(std::string(63, 'n'), R"({"path": "t", "type": "text"})")));
	ExpectError(
		R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "id": {"path": "x", "type": "text"}}})",
		"42701", "not valid JSON");
	ExpectError(
		R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}, "doc": {"path": "d", "type": "text"}},
	    "document": "doc"})",
		"42701", "mapping.document reuses column name \"doc\"");
	EXPECT_NO_THROW(ParseMapping(WithColumn("ID", R"({"path": "t", "type": "text"})"))) << "names are case-sensitive";
}

TEST(ValidateMapping, DuplicateColumnsBuiltInCpp) {
	Mapping m;
	m.pk = "id";
	m.columns = {{"id", {"_id"}, "text", Format::kDefault}, {"id", {"x"}, "text", Format::kDefault}};
	try {
		ValidateMapping(m);
		FAIL() << "expected 42701";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "42701");
		EXPECT_NE(e.Message().find("mapping.columns.id reuses column name \"id\""), std::string::npos) << e.Message();
	}
}

TEST(ValidateMapping, Utf8AndColumnLimit) {
	Mapping m;
	m.pk = "id";
	m.columns = {{"id", {"_id"}, "text", Format::kDefault}, {"bad\xff", {"x"}, "text", Format::kDefault}};
	try {
		ValidateMapping(m);
		FAIL() << "expected 22021";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "22021");
		EXPECT_NE(e.Message().find("is not valid UTF-8"), std::string::npos) << e.Message();
	}
	m.columns[1] = {"x", {"a\xff"}, "text", Format::kDefault};
	try {
		ValidateMapping(m);
		FAIL() << "expected 22021";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "22021");
		EXPECT_NE(e.Message().find("mapping.columns.x.path has a key that is not valid UTF-8"), std::string::npos);
	}
	m.columns.resize(1);
	for (int i = 0; i < 1600; ++i)
		m.columns.push_back({"c" + std::to_string(i), {"f"}, "text", Format::kDefault});
	try {
		ValidateMapping(m);
		FAIL() << "expected 54011";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "54011");
		EXPECT_NE(e.Message().find("mapping.columns.c1599 makes the table exceed 1600 columns"), std::string::npos)
			<< e.Message();
	}
	EXPECT_THROW(Json::NewString("a\xff"), Error);
}

TEST(ParseMapping, PathRules) {
	ExpectError(WithColumn("t", R"({"path": "", "type": "text"})"), "22023", "mapping.columns.t.path is empty");
	ExpectError(WithColumn("t", R"({"path": [], "type": "text"})"), "22023", "mapping.columns.t.path is empty");
	ExpectError(WithColumn("t", R"({"path": "a..b", "type": "text"})"), "22023",
				"mapping.columns.t.path has an empty key (key 2 of \"a..b\")");
	ExpectError(WithColumn("t", R"({"path": ["a", ""], "type": "text"})"), "22023",
				"mapping.columns.t.path has an empty key");
	ExpectError(WithColumn("t", R"({"path": "a.$x", "type": "text"})"), "22023",
				"mapping.columns.t.path has key \"$x\" starting with '$'");
	ExpectError(WithColumn("t", R"({"path": "$", "type": "text"})"), "22023", "starting with '$'");
	Mapping m = ParseMapping(WithColumn("t", R"({"path": "items.0.name", "type": "text"})"));
	EXPECT_EQ(m.columns[1].path, (Path{"items", "0", "name"}));
}

// MongoDB stores documents nested up to 180 levels: a path reaching the deepest field has 180 keys.
TEST(ParseMapping, PathsAsDeepAsMongoDBStores) {
	std::string deepest = "d";
	for (int i = 1; i < 180; ++i)
		deepest += ".a";
	Mapping m = ParseMapping(WithColumn("t", "{\"path\": \"" + deepest + "\", \"type\": \"text\"}"));
	EXPECT_EQ(m.columns[1].path.size(), 180u);
	ExpectError(WithColumn("t", "{\"path\": \"" + deepest + ".a\", \"type\": \"text\"}"), "22023",
				"mapping.columns.t.path has more than 180 keys", "180 levels");
}

TEST(ParseMapping, TypeRules) {
	ExpectError(WithColumn("t", R"({"path": "t", "type": ""})"), "22023", "mapping.columns.t.type is empty");
	ExpectError(WithColumn("t", R"({"path": "t", "type": "text; drop table x"})"), "22023",
				"mapping.columns.t.type is not a type name");
	ExpectError(WithColumn("t", R"({"path": "t", "type": "integer", "format": "extjson"})"), "42804",
				"mapping.columns.t.format is \"extjson\" but the type is \"integer\"");
	ExpectError(WithColumn("t", R"({"path": "t", "type": "text", "format": "presence"})"), "42804",
				"mapping.columns.t.format is \"presence\"");
	EXPECT_NO_THROW(ParseMapping(WithColumn("t", R"({"path": "t", "type": "my_schema.my_type"})")));
}

TEST(ParseMapping, ArrayRules) {
	std::string head = R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}, "arrays": {"a": )";
	ExpectError(head + R"({"path": "a", "fk": "f"}}})", "22023", "mapping.arrays.a.table is missing");
	ExpectError(head + R"({"path": "a", "table": "t"}}})", "22023", "mapping.arrays.a.fk is missing");
	ExpectError(head + R"({"table": "t", "fk": "f"}}})", "22023", "mapping.arrays.a.path is missing");
	ExpectError(head + R"({"path": "a", "table": "t", "fk": "f", "position": "f"}}})", "42701",
				"mapping.arrays.a.position reuses column name \"f\"");
	ExpectError(head + R"({"path": "a", "table": "t", "fk": "f", "columns": {"f": {"path": "x", "type": "text"}}}}})",
				"42701", "mapping.arrays.a.columns.f reuses column name \"f\"");
	ExpectError(head + R"({"path": "a", "table": "t", "fk": "f", "columns": {"v": {"path": "$", "type": "text"}},
	    "arrays": {"b": {"path": "b", "table": "t2", "fk": "g"}}}}})",
				"22023", "mapping.arrays.a.arrays.b is nested in an array mapping without \"id\"");
	ExpectError(head + R"({"path": "a", "table": "a.b.c", "fk": "f"}}})", "22023", "more than two dotted parts");
	ExpectError(head + R"({"path": "$", "table": "t", "fk": "f"}}})", "22023", "starting with '$'");
	ExpectError(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}, "arrays": {
	    "a": {"path": "a", "table": "t", "fk": "f"}, "b": {"path": "b", "table": "T", "fk": "f"}}})",
				"42P07", "mapping.arrays.b.table names table \"T\" a second time");
	Mapping m = ParseMapping(head + R"({"path": "a", "table": "t", "fk": "f", "id": "child_id",
	    "columns": {"v": {"path": "$", "type": "integer"}},
	    "arrays": {"b": {"path": "b", "table": "t2", "fk": "parent"}}}}})");
	EXPECT_EQ(m.arrays[0].id, "child_id");
	EXPECT_EQ(m.arrays[0].columns[0].path, (Path{"$"}));
	EXPECT_EQ(m.arrays[0].arrays[0].table, "t2");
	EXPECT_EQ(ParseMapping(SerializeMapping(m)), m);
}

TEST(ParseTarget, SchemaTableAndQuoting) {
	Target t = ParseTarget("Posts");
	EXPECT_EQ(t.schema, "");
	EXPECT_EQ(t.table, "posts");
	t = ParseTarget("app.posts");
	EXPECT_EQ(t.schema, "app");
	EXPECT_EQ(t.table, "posts");
	t = ParseTarget("\"My Schema\".\"Odd\"\"Name.x\"");
	EXPECT_EQ(t.schema, "My Schema");
	EXPECT_EQ(t.table, "Odd\"Name.x");
	for (const char *bad : {"", ".", "a.", ".a", "a.b.c", "\"open", "\"a\"b", "\"\""})
		EXPECT_THROW(ParseTarget(bad), Error) << bad;
	try {
		ParseTarget(std::string(64, 't'));
		FAIL();
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "42602");
	}
}

TEST(ParsePath, SplitsOnDots) {
	EXPECT_EQ(ParsePath("a.b.c"), (Path{"a", "b", "c"}));
	EXPECT_EQ(ParsePath("a"), (Path{"a"}));
	EXPECT_EQ(ParsePath(""), Path{});
	EXPECT_EQ(ParsePath("a."), (Path{"a", ""}));
	EXPECT_EQ(PathText({"a", "b"}), "a.b");
}

} // namespace
} // namespace mongo_river::mapping
