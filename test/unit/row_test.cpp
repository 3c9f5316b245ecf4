// row_test.cpp: whole documents -> root and child rows; pk injectivity; error collection.
#include <gtest/gtest.h>

#include <set>

#include "mongo_river/convert/row.hpp"
#include "test_bson.hpp"

namespace mongo_river::convert {
namespace {

using test::Doc;

const char *const kPosts = R"({
  "pk": "id",
  "columns": {
    "id":          {"path": "_id",          "type": "text"},
    "title":       {"path": "title",        "type": "text"},
    "author_name": {"path": "author.name",  "type": "text"},
    "odd":         {"path": ["key.with.dots", "x"], "type": "integer"},
    "tags":        {"path": "tags",         "type": "text[]"}
  },
  "arrays": {
    "comments": {"path": "comments", "table": "post_comments", "fk": "post_id", "position": "pos",
                 "columns": {"user": {"path": "user", "type": "text"},
                             "body": {"path": "comment", "type": "text"}}}
  },
  "document": "doc"
})";

DocumentConverter Converter(const char *mapping) {
	return DocumentConverter(mapping::ParseMapping(mapping));
}

std::string Text(const Value &value) {
	return value.IsNull() ? "NULL" : ValueText(value);
}

TEST(DocumentConverter, LayoutOfExample) {
	DocumentConverter converter = Converter(kPosts);
	const auto &layout = converter.Layout();
	ASSERT_EQ(layout.size(), 2u);
	ASSERT_EQ(layout[0].columns.size(), 6u);
	EXPECT_EQ(layout[0].columns[0].role, ColumnRole::kPrimaryKey);
	EXPECT_EQ(layout[0].columns[5].name, "doc");
	EXPECT_EQ(layout[0].columns[5].type, "jsonb");
	EXPECT_EQ(layout[0].primary_key, std::vector<std::string>{"id"});
	EXPECT_EQ(layout[1].table, "post_comments");
	EXPECT_EQ(layout[1].parent, 0);
	ASSERT_EQ(layout[1].columns.size(), 4u);
	EXPECT_EQ(layout[1].columns[0].name, "post_id");
	EXPECT_EQ(layout[1].columns[0].type, "text");
	EXPECT_EQ(layout[1].columns[0].role, ColumnRole::kForeignKey);
	EXPECT_EQ(layout[1].columns[1].type, "integer");
	EXPECT_EQ(layout[1].primary_key, (std::vector<std::string>{"post_id", "pos"}));
}

TEST(DocumentConverter, ConvertsExampleDocument) {
	DocumentConverter converter = Converter(kPosts);
	mongo::Bson doc = Doc(R"({"_id": "p1", "title": "Hello", "author": {"name": "Ann"}, "key.with.dots": {"x": 7},
	    "tags": ["a", "b"],
	    "comments": [{"user": "Elon", "comment": "Wow"}, {"user": "Kevin", "comment": "Nice !"}]})");
	ConvertedDocument result = converter.Convert(*doc);
	ASSERT_TRUE(result.errors.empty()) << result.errors[0].Message();
	EXPECT_EQ(Text(result.key), "p1");
	ASSERT_EQ(result.row.size(), 6u);
	EXPECT_EQ(Text(result.row[1]), "Hello");
	EXPECT_EQ(Text(result.row[2]), "Ann");
	EXPECT_EQ(Text(result.row[3]), "7");
	EXPECT_EQ(Text(result.row[4]), R"({"a","b"})");
	EXPECT_NE(Text(result.row[5]).find(R"("author":{"name":"Ann"})"), std::string::npos);
	ASSERT_EQ(result.children.size(), 1u);
	const auto &rows = result.children[0].rows;
	ASSERT_EQ(rows.size(), 2u);
	EXPECT_EQ(Text(rows[1][0]), "p1");
	EXPECT_EQ(Text(rows[1][1]), "1");
	EXPECT_EQ(Text(rows[1][2]), "Kevin");
	EXPECT_EQ(Text(rows[1][3]), "Nice !");
}

TEST(DocumentConverter, MissingFieldsAreNull) {
	DocumentConverter converter = Converter(kPosts);
	ConvertedDocument result = converter.Convert(*Doc(R"({"_id": "p2"})"));
	ASSERT_TRUE(result.errors.empty());
	EXPECT_TRUE(result.row[1].IsNull());
	EXPECT_TRUE(result.row[2].IsNull());
	EXPECT_TRUE(result.children[0].rows.empty());
}

TEST(DocumentConverter, CollectsEveryErrorWithPathAndColumn) {
	DocumentConverter converter = Converter(kPosts);
	ConvertedDocument result =
		converter.Convert(*Doc(R"({"_id": "p3", "key.with.dots": {"x": {"$numberLong": "9999999999"}},
	    "tags": ["a", {"b": 1}], "comments": [{"user": 5}, "oops"]})"));
	ASSERT_EQ(result.errors.size(), 3u);
	EXPECT_EQ(result.errors[0].Path(), "key.with.dots.x");
	EXPECT_EQ(result.errors[0].BsonType(), "int64");
	EXPECT_EQ(result.errors[0].Sqlstate(), "22003");
	EXPECT_EQ(result.errors[0].Message(),
			  "cannot convert int64 9999999999 at \"key.with.dots.x\" to integer: out of range");
	EXPECT_EQ(result.errors[0].Detail(), "column \"odd\"");
	EXPECT_EQ(result.errors[1].Path(), "tags.1");
	EXPECT_EQ(result.errors[2].Path(), "comments.1");
	EXPECT_NE(result.errors[2].Detail().find("of table \"post_comments\""), std::string::npos);
	EXPECT_EQ(Text(result.children[0].rows[0][2]), "5") << "int32 -> text is fine";
}

TEST(DocumentConverter, ArrayPathThatIsNotAnArray) {
	DocumentConverter converter = Converter(kPosts);
	ConvertedDocument result = converter.Convert(*Doc(R"({"_id": "p4", "comments": {"user": "x"}})"));
	ASSERT_EQ(result.errors.size(), 1u);
	EXPECT_EQ(result.errors[0].Sqlstate(), "42804");
	EXPECT_NE(result.errors[0].Message().find("expected an array"), std::string::npos);
}

TEST(DocumentConverter, RetargetTurnsADomainOverAnArrayIntoArrays) {
	const char *mapping = R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
		"tags": {"path": "tags", "type": "public.short_tags"}, "mood": {"path": "mood", "type": "public.mood"}},
		"arrays": {"items": {"path": "items", "table": "items", "fk": "doc_id", "position": "pos",
		"columns": {"sizes": {"path": "sizes", "type": "public.short_ints"}}}}})";
	DocumentConverter converter(mapping::ParseMapping(mapping));
	const char *doc = R"({"_id": "a", "tags": ["x", "y"], "mood": "ok", "items": [{"sizes": [1, 2]}]})";
	// By its name, a domain is converted as one value (JSON for a BSON array).
	ConvertedDocument before = converter.Convert(*Doc(doc));
	EXPECT_EQ(std::get_if<Array>(&before.row[1].v), nullptr);
	EXPECT_TRUE(converter.Retarget(0, "tags", "text[]"));
	EXPECT_TRUE(converter.Retarget(1, "sizes", "integer[]"));
	EXPECT_FALSE(converter.Retarget(0, "nope", "text[]"));
	EXPECT_FALSE(converter.Retarget(7, "sizes", "text[]"));
	ConvertedDocument result = converter.Convert(*Doc(doc));
	ASSERT_TRUE(result.errors.empty()) << result.errors[0].Message();
	const auto *tags = std::get_if<Array>(&result.row[1].v);
	ASSERT_NE(tags, nullptr) << "a domain over text[] takes the array as an array";
	ASSERT_EQ(tags->elements.size(), 2u);
	EXPECT_EQ(Text(tags->elements[1]), "y");
	EXPECT_EQ(Text(result.row[2]), "ok"); // untouched
	const auto *sizes = std::get_if<Array>(&result.children.at(0).rows.at(0).back().v);
	ASSERT_NE(sizes, nullptr) << "child columns are retargeted too";
	EXPECT_EQ(Text(sizes->elements[0]), "1");
}

TEST(PrimaryKey, TextHoldsStringsAndObjectIdsOnly) {
	DocumentConverter converter = Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}})");
	EXPECT_EQ(Text(converter.Convert(*Doc(R"({"_id": "abc"})")).key), "abc");
	EXPECT_EQ(Text(converter.Convert(*Doc(R"({"_id": {"$oid": "5f1d7a3e9b1e8a0012345678"}})")).key),
			  "5f1d7a3e9b1e8a0012345678");
	ConvertedDocument result = converter.Convert(*Doc(R"({"_id": 1})"));
	ASSERT_EQ(result.errors.size(), 1u);
	EXPECT_TRUE(result.key.IsNull());
	EXPECT_EQ(result.errors[0].Sqlstate(), "22023");
	EXPECT_NE(result.errors[0].Message().find("cannot convert int32 1 at \"_id\" to text primary key \"id\""),
			  std::string::npos)
		<< result.errors[0].Message();
	EXPECT_NE(result.errors[0].Hint().find("\"format\": \"extjson\""), std::string::npos) << result.errors[0].Hint();
}

TEST(PrimaryKey, ExtendedJsonFormatIsInjective) {
	DocumentConverter converter =
		Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text", "format": "extjson"}}})");
	const char *ids[] = {
		R"({"_id": "1"})",
		R"({"_id": 1})",
		R"({"_id": {"$numberLong": "1"}})",
		R"({"_id": 1.0})",
		R"({"_id": {"$numberDecimal": "1"}})",
		R"({"_id": {"$oid": "000000000000000000000001"}})",
		R"({"_id": "000000000000000000000001"})",
		R"({"_id": {"a": 1}})",
		R"({"_id": [1]})",
		R"({"_id": true})",
		R"({"_id": {"$date": {"$numberLong": "1"}}})",
		R"({"_id": {"$binary": {"base64": "AQ==", "subType": "00"}}})",
	};
	std::set<std::string> keys;
	for (const char *id : ids) {
		ConvertedDocument result = converter.Convert(*Doc(id));
		ASSERT_TRUE(result.errors.empty()) << id;
		keys.insert(Text(result.key));
	}
	EXPECT_EQ(keys.size(), std::size(ids));
	EXPECT_EQ(keys.count(R"("1")"), 1u);
	EXPECT_EQ(keys.count(R"({"$numberInt":"1"})"), 1u);
}

TEST(PrimaryKey, MissingOrNullIsAnError) {
	DocumentConverter converter = Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"}}})");
	for (const char *doc : {R"({"x": 1})", R"({"_id": null})"}) {
		ConvertedDocument result = converter.Convert(*Doc(doc));
		ASSERT_EQ(result.errors.size(), 1u) << doc;
		EXPECT_EQ(result.errors[0].Sqlstate(), "23502");
		EXPECT_TRUE(result.key.IsNull());
	}
}

TEST(PrimaryKey, NullIdUnderAnExtendedJsonKeyIsTheKeyNull) {
	// MongoDB allows one document with _id null; an extjson key holds any _id (review 24).
	DocumentConverter converter =
		Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text", "format": "extjson"}}})");
	ConvertedDocument result = converter.Convert(*Doc(R"({"_id": null})"));
	ASSERT_TRUE(result.errors.empty()) << result.errors[0].Message();
	EXPECT_EQ(Text(result.key), "null");
	ConvertedDocument missing = converter.Convert(*Doc(R"({"x": 1})"));
	ASSERT_EQ(missing.errors.size(), 1u);
	EXPECT_EQ(missing.errors[0].Sqlstate(), "23502");
}

TEST(PrimaryKey, NativeTypes) {
	DocumentConverter converter = Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "bigint"}}})");
	EXPECT_EQ(Text(converter.Convert(*Doc(R"({"_id": {"$numberLong": "12345678901"}})")).key), "12345678901");
	EXPECT_EQ(converter.Convert(*Doc(R"({"_id": "x"})")).errors.size(), 1u);
}

TEST(DocumentConverter, NestedArraysScalarsAndPresence) {
	DocumentConverter converter = Converter(R"({"pk": "id",
	  "columns": {"id": {"path": "_id", "type": "text"}, "has_note": {"path": "note", "type": "boolean", "format": "presence"}},
	  "arrays": {"posts": {"path": "posts", "table": "timeline_posts", "fk": "timeline_id", "id": "id",
	      "columns": {"name": {"path": "name", "type": "text"}},
	      "arrays": {"tags": {"path": "tags", "table": "timeline_posts_tags", "fk": "timeline_post_id", "id": "id",
	          "columns": {"tag": {"path": "$", "type": "text"}}}}}}})");
	const auto &layout = converter.Layout();
	ASSERT_EQ(layout.size(), 3u);
	EXPECT_EQ(layout[2].parent, 1);
	EXPECT_EQ(layout[2].columns[0].type, "text");
	EXPECT_EQ(layout[2].primary_key, std::vector<std::string>{"id"});
	ConvertedDocument result = converter.Convert(*Doc(R"({"_id": "t1", "note": null,
	    "posts": [{"name": "A", "tags": ["x", "y"]}, {"name": "B"}, {"name": "C", "tags": ["z"]}]})"));
	ASSERT_TRUE(result.errors.empty()) << result.errors[0].Message();
	EXPECT_EQ(Text(result.row[1]), "false");
	const auto &posts = result.children[0].rows;
	ASSERT_EQ(posts.size(), 3u);
	EXPECT_EQ(Text(posts[2][0]), "t1");
	EXPECT_EQ(Text(posts[2][1]), "t1.2");
	EXPECT_EQ(Text(posts[2][2]), "C");
	const auto &tags = result.children[1].rows;
	ASSERT_EQ(tags.size(), 3u);
	EXPECT_EQ(Text(tags[1][0]), "t1.0");
	EXPECT_EQ(Text(tags[1][1]), "t1.0.1");
	EXPECT_EQ(Text(tags[1][2]), "y");
	EXPECT_EQ(Text(tags[2][0]), "t1.2");
	EXPECT_EQ(Text(tags[2][2]), "z");
	EXPECT_EQ(Text(converter.Convert(*Doc(R"({"_id": "t2", "note": 0})")).row[1]), "true");
}

// Same tells whether two conversions hold the same key, rows, child rows and errors.
void ExpectSame(const ConvertedDocument &a, const ConvertedDocument &b, const std::string &what) {
	EXPECT_TRUE(a.key == b.key) << what;
	EXPECT_EQ(a.row.size(), b.row.size()) << what;
	for (std::size_t i = 0; i < std::min(a.row.size(), b.row.size()); ++i)
		EXPECT_TRUE(a.row[i] == b.row[i]) << what << ", column " << i;
	ASSERT_EQ(a.children.size(), b.children.size()) << what;
	for (std::size_t t = 0; t < a.children.size(); ++t) {
		EXPECT_EQ(a.children[t].table, b.children[t].table) << what;
		ASSERT_EQ(a.children[t].rows.size(), b.children[t].rows.size()) << what << ", table " << t;
		for (std::size_t r = 0; r < a.children[t].rows.size(); ++r)
			EXPECT_TRUE(a.children[t].rows[r] == b.children[t].rows[r]) << what << ", table " << t << " row " << r;
	}
	ASSERT_EQ(a.errors.size(), b.errors.size()) << what;
	for (std::size_t i = 0; i < a.errors.size(); ++i)
		EXPECT_EQ(a.errors[i].Message(), b.errors[i].Message()) << what;
}

TEST(DocumentConverter, ConvertIntoAReusedDocumentLeavesNothingOfTheLast) {
	// A copy converts each batch's documents into the storage of the last batch's: what a document
	// leaves (children, errors, a document column, a key) must not show in the next one's rows.
	DocumentConverter converter = Converter(kPosts);
	const char *const docs[] = {
		R"({"_id": "p1", "title": "Hello", "tags": ["a"], "comments": [{"user": "A", "comment": "x"}, {"user": "B"}]})",
		R"({"_id": "p2"})",
		R"({"_id": "p3", "key.with.dots": {"x": {"$numberLong": "9999999999"}}, "comments": [5]})",
		R"({"title": "no key", "comments": [{"user": "C"}]})",
		R"({"_id": "p5", "comments": [{"user": "D", "comment": "y"}, {"user": "E"}, {"user": "F"}]})",
		R"({"_id": "p6", "comments": {"not": "an array"}})",
		R"({"_id": "p7", "title": "again"})",
		R"({"_id": {"$oid": "5f0c6e2b9d1e8a3b4c5d6e7f"}, "title": 5, "author": {"name": {"$oid": "5f0c6e2b9d1e8a3b4c5d6e70"}}})",
		R"({"_id": "p9", "title": null, "author": {"name": "a long name that does not fit in a short string"}})",
		R"({"_id": "p10", "title": "bad\u0000text", "author": "not a document"})",
		R"({"_id": "p11"})",
		R"({"_id": 12, "title": "an int key"})",
		R"({"_id": "p13", "title": "x", "tags": ["a", "b"], "key.with.dots": {"x": 3}})",
	};
	// The same documents through a mapping whose columns take other formats (Extended JSON key,
	// presence, text from numbers) and without a document column.
	DocumentConverter other = Converter(R"js({"pk": "id", "columns": {
	    "id": {"path": "_id", "type": "text", "format": "extjson"},
	    "title": {"path": "title", "type": "text"},
	    "has_title": {"path": "title", "type": "boolean", "format": "presence"},
	    "name": {"path": "author.name", "type": "varchar(20)"}}})js");
	for (const DocumentConverter *c : {&converter, &other}) {
		ConvertedDocument reused;
		for (const char *json : docs) {
			mongo::Bson doc = Doc(json);
			c->ConvertInto(*doc, &reused);
			ExpectSame(reused, c->Convert(*doc), json);
		}
	}
}

} // namespace
} // namespace mongo_river::convert
