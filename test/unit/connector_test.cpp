// connector_test.cpp: mongo-connector-postgresql mappings.json import, with the README's examples.
#include <gtest/gtest.h>

#include "mongo_river/convert/row.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/connector.hpp"
#include "test_bson.hpp"

namespace mongo_river::mapping {
namespace {

// The two reference files of /work/shared/examples, unchanged.
const char *const kPostsComments = R"({
    "my_mongo_database": {
        "posts": {
            "pk": "id",
            "_id": {
                "dest": "id",
                "type": "TEXT"
            },
            "content": {
                "dest": "description",
                "type": "TEXT"
            },
            "comments": {
                "dest": "comments",
                "type": "_ARRAY",
                "fk": "post_id"
            }
        },
        "comments": {
            "pk": "id",
             "post_id": {
                "dest": "post_id",
                "type": "TEXT"
            },
            "user": {
                "dest": "user",
                "type": "TEXT"
            },
            "comment": {
                "dest": "comment",
                "type": "TEXT"
            }
        }
    }
})";

const char *const kSample = R"json({
	"my_mongo_database": {
		"my_mongo_collection": {
		    "pk": "id",
             "indices": [
                 "UNIQUE INDEX category_idx ON LeadMonitoring(category)",
                 "UNIQUE INDEX conversationDate_idx ON LeadMonitoring(conversation_date)"
            ],
			"_id": {
				"dest": "id",
				"type": "TEXT"
			},
			"description": {
				"dest": "description",
				"type": "TEXT"
			},
			"enable": {
				"dest": "enabled",
				"type": "BOOLEAN"
			},
			"myobject.subproperty": {
				"dest": "subproperty",
				"type": "TEXT"
			}
		}
	}
})json";

// ExpectImportError imports json and checks the Error's SQLSTATE and message fragment.
void ExpectImportError(const std::string &json, const std::string &sqlstate, const std::string &needle) {
	try {
		ImportConnectorMappings(json);
		ADD_FAILURE() << "expected an Error for " << json;
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), sqlstate) << e.Message();
		EXPECT_NE(e.Message().find(needle), std::string::npos) << "message: " << e.Message() << "\nwanted: " << needle;
	}
}

std::vector<std::string> ColumnNames(const convert::TableLayout &table) {
	std::vector<std::string> names;
	for (const auto &column : table.columns)
		names.push_back(column.name);
	return names;
}

TEST(ImportConnector, PostsAndCommentsImportUnchanged) {
	std::vector<ImportedCollection> imported = ImportConnectorMappings(kPostsComments);
	ASSERT_EQ(imported.size(), 1u) << "comments is the posts array's child table, not a collection of its own";
	const ImportedCollection &posts = imported[0];
	EXPECT_EQ(posts.database, "my_mongo_database");
	EXPECT_EQ(posts.collection, "posts");
	EXPECT_EQ(posts.table, "posts");
	EXPECT_TRUE(posts.indexes.empty());
	convert::DocumentConverter converter(posts.mapping);
	const auto &layout = converter.Layout();
	ASSERT_EQ(layout.size(), 2u);
	EXPECT_EQ(ColumnNames(layout[0]), (std::vector<std::string>{"id", "description"}));
	EXPECT_EQ(layout[0].primary_key, std::vector<std::string>{"id"});
	EXPECT_EQ(layout[1].table, "comments");
	EXPECT_EQ(ColumnNames(layout[1]), (std::vector<std::string>{"post_id", "id", "user", "comment"}));
	EXPECT_EQ(layout[1].columns[0].role, convert::ColumnRole::kForeignKey);
	EXPECT_EQ(layout[1].columns[0].type, "TEXT");
	EXPECT_EQ(layout[1].parent, 0) << "post_id references posts";
	EXPECT_EQ(layout[1].primary_key, std::vector<std::string>{"id"});

	mongo::Bson doc = test::Doc(R"({"_id": "p1", "name": "Check out the mongo -> postgres connector",
	    "content": "Inspiring blog post", "comments": [{"user": "Elon Musk", "comment": "What a revolution !"},
	    {"user": "Kevin P. Ryan", "comment": "Nice !"}]})");
	convert::ConvertedDocument rows = converter.Convert(*doc);
	ASSERT_TRUE(rows.errors.empty());
	EXPECT_EQ(convert::ValueText(rows.row[1]), "Inspiring blog post");
	ASSERT_EQ(rows.children[0].rows.size(), 2u);
	EXPECT_EQ(convert::ValueText(rows.children[0].rows[1][0]), "p1");
	EXPECT_EQ(convert::ValueText(rows.children[0].rows[1][1]), "p1.1");
	EXPECT_EQ(convert::ValueText(rows.children[0].rows[1][2]), "Kevin P. Ryan");
}

TEST(ImportConnector, SampleRefusesItsImpossibleIndices) {
	try {
		ImportConnectorMappings(kSample);
		FAIL() << "the sample's indices name a table and columns the mapping does not create";
	} catch (const Error &e) {
		EXPECT_EQ(e.Sqlstate(), "22023");
		EXPECT_NE(e.Message().find("index \"category_idx\" of my_mongo_database.my_mongo_collection"),
				  std::string::npos)
			<< e.Message();
		EXPECT_NE(
			e.Message().find("table leadmonitoring is not created by the mapping (it creates my_mongo_collection)"),
			std::string::npos)
			<< e.Message();
		EXPECT_NE(e.Message().find("column category is not mapped"), std::string::npos) << e.Message();
		EXPECT_NE(e.Detail().find("index \"conversationdate_idx\""), std::string::npos) << e.Detail();
		EXPECT_NE(e.Detail().find("column conversation_date is not mapped"), std::string::npos) << e.Detail();
		EXPECT_NE(e.Hint().find("nothing was imported"), std::string::npos);
	}
}

TEST(ImportConnector, SampleWithoutIndicesFlattensAndRenames) {
	std::string json = kSample;
	std::size_t start = json.find("\"indices\"");
	std::size_t end = json.find("],", start) + 2;
	json.erase(start, end - start);
	std::vector<ImportedCollection> imported = ImportConnectorMappings(json);
	ASSERT_EQ(imported.size(), 1u);
	const Mapping &m = imported[0].mapping;
	EXPECT_EQ(imported[0].table, "my_mongo_collection");
	ASSERT_EQ(m.columns.size(), 4u);
	EXPECT_EQ(m.columns[2].name, "enabled");
	EXPECT_EQ(m.columns[2].path, (Path{"enable"}));
	EXPECT_EQ(m.columns[3].name, "subproperty");
	EXPECT_EQ(m.columns[3].path, (Path{"myobject", "subproperty"}));
	EXPECT_EQ(m.columns[3].type, "TEXT");
}

TEST(ImportConnector, ValidIndicesBecomeStructuredDefinitions) {
	std::string json = kSample;
	json.replace(json.find("UNIQUE INDEX category_idx ON LeadMonitoring(category)"), 53,
				 "unique index \\\"Desc_Idx\\\" on My_Mongo_Collection ( description , \\\"enabled\\\" );");
	json.replace(json.find("UNIQUE INDEX conversationDate_idx ON LeadMonitoring(conversation_date)"), 70,
				 "INDEX sub_idx ON my_mongo_collection(subproperty)");
	std::vector<ImportedCollection> imported = ImportConnectorMappings(json);
	ASSERT_EQ(imported[0].indexes.size(), 2u);
	const IndexDefinition &first = imported[0].indexes[0];
	EXPECT_TRUE(first.unique);
	EXPECT_EQ(first.name, "Desc_Idx");
	EXPECT_EQ(first.table, "my_mongo_collection");
	EXPECT_EQ(first.columns, (std::vector<std::string>{"description", "enabled"}));
	EXPECT_FALSE(imported[0].indexes[1].unique);
}

TEST(ParseIndexDefinition, AcceptsOnlyTheSimpleForm) {
	IndexDefinition index = ParseIndexDefinition("INDEX a ON t(x)");
	EXPECT_FALSE(index.unique);
	EXPECT_EQ(index.table, "t");
	for (const char *bad : {"INDEX a ON t USING gin(x)", "INDEX a ON t(lower(x))", "INDEX a ON t(x) WHERE x > 0",
							"INDEX a ON t(x DESC)", "INDEX ON t(x)", "TABLE t", "INDEX a ON s.t(x)", "INDEX a ON t()",
							"INDEX a ON t(x); DROP TABLE t", "UNIQUE a ON t(x)", "INDEX a ON t(x", ""})
		EXPECT_THROW(ParseIndexDefinition(bad), Error) << bad;
}

TEST(ImportConnector, ArraysOfScalarsPresenceAndIndexFlags) {
	const char *json = R"({"db": {
	  "timeline": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "author": {"type": "TEXT", "index": true},
	      "flag": {"dest": "has_flag", "type": "_PRESENCE"},
	      "posts": {"type": "_ARRAY", "dest": "timeline_posts", "fk": "timeline_id"}},
	  "timeline_posts": {"pk": "id", "timeline_id": {"type": "TEXT"}, "name": {"type": "TEXT"},
	      "tags": {"dest": "timeline_posts_tags", "type": "_ARRAY_OF_SCALARS", "fk": "timeline_post_id",
	               "valueField": "tag"}},
	  "timeline_posts_tags": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "tag": {"type": "TEXT"},
	      "timeline_post_id": {"type": "TEXT", "index": true}}}})";
	std::vector<ImportedCollection> imported = ImportConnectorMappings(json);
	ASSERT_EQ(imported.size(), 1u);
	const Mapping &m = imported[0].mapping;
	EXPECT_EQ(FindColumn(m.columns, "has_flag")->format, Format::kPresence);
	EXPECT_EQ(FindColumn(m.columns, "has_flag")->type, "boolean");
	ASSERT_EQ(m.arrays.size(), 1u);
	EXPECT_EQ(m.arrays[0].id, "id");
	ASSERT_EQ(m.arrays[0].arrays.size(), 1u);
	const ArrayMapping &tags = m.arrays[0].arrays[0];
	EXPECT_EQ(tags.table, "timeline_posts_tags");
	EXPECT_EQ(tags.fk, "timeline_post_id");
	EXPECT_EQ(tags.id, "id");
	ASSERT_EQ(tags.columns.size(), 1u);
	EXPECT_EQ(tags.columns[0].path, (Path{"$"}));
	ASSERT_EQ(imported[0].indexes.size(), 2u);
	EXPECT_EQ(imported[0].indexes[0].name, "idx_timeline_author");
	EXPECT_EQ(imported[0].indexes[1].table, "timeline_posts_tags");

	convert::DocumentConverter converter(m);
	convert::ConvertedDocument rows = converter.Convert(*test::Doc(
		R"({"_id": "t1", "author": "507f1f77bcf86cd799439011", "posts": [{"name": "N", "tags": ["Awesome", "Article"]}]})"));
	ASSERT_TRUE(rows.errors.empty());
	ASSERT_EQ(rows.children[1].rows.size(), 2u);
	EXPECT_EQ(convert::ValueText(rows.children[1].rows[1][0]), "t1.0");
	EXPECT_EQ(convert::ValueText(rows.children[1].rows[1][2]), "Article");
}

TEST(ImportConnector, Errors) {
	ExpectImportError("[]", "22023", "the file must be an object of databases");
	ExpectImportError(R"({"db": []})", "22023", "db must be an object of collections");
	ExpectImportError(R"({"db": {"c": {"_id": {"dest": "id", "type": "TEXT"}}}})", "22023", "db.c.pk is missing");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "x": {"type": "TEXT"}}}})", "42703",
					  "db.c.pk names column \"id\", which no field maps");
	ExpectImportError(
		R"x({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT", "transform": "val.upper()"}}}})x", "0A000",
		"db.c._id.transform is Python code");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT", "colour": 1}}}})", "22023",
					  "db.c._id.colour is not a known key");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id"}}}})", "22023", "db.c._id.type is missing");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
	    "a": {"type": "_ARRAY", "fk": "c_id"}}}})",
					  "22023", "child entry \"a\" is missing");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
	    "a": {"type": "_ARRAY"}}, "a": {"pk": "id"}}})",
					  "22023", "db.c.a.fk is missing");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
	    "a": {"type": "_ARRAY", "fk": "c_id"}}, "a": {"pk": "id", "c_id": {"type": "INTEGER"}}}})",
					  "42804", "declares fk \"c_id\" as INTEGER but the parent's key is TEXT");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
	    "a": {"type": "_ARRAY", "dest": "c", "fk": "c_id"}}}})",
					  "22023", "has no root collection");
	ExpectImportError(
		R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "t": {"type": "TEXT; --"}}}})", "22023",
		"db.c: invalid mapping: mapping.columns.t.type is not a type name");
	ExpectImportError(
		R"x({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "indices": ["INDEX i ON c(lower(id))"]}}})x",
		"22023", "unsupported index definition");
}

TEST(ImportConnector, NothingHalfDone) {
	std::string json = R"x({"db1": {"good": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}}},
	    "db2": {"bad": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"}, "indices": ["INDEX i ON elsewhere(id)"]}}})x";
	EXPECT_THROW(ImportConnectorMappings(json), Error);
}

} // namespace
} // namespace mongo_river::mapping

namespace mongo_river::mapping {
namespace {

// mongo-connector-postgresql's test scenario "nested list of documents" (its
// features/envs/replicate_list_of_documents_nested/mappings.json): an _ARRAY inside an _ARRAY
// child, the inner fk declared SERIAL because the tool keyed the middle table with a SERIAL.
const char *const kNestedDocuments = R"({
    "db_test_nested_array": {
        "col_nested": {
            "pk": "_id",
            "_id": {"type": "INT"},
            "a": {"type": "_ARRAY", "dest": "col_array_lvl1", "fk": "id_nested"}
        },
        "col_array_lvl1": {
            "pk": "_id",
            "id_nested": {"type": "INT"},
            "b": {"type": "_ARRAY", "dest": "col_array_lvl2", "fk": "id_lvl1"}
        },
        "col_array_lvl2": {
            "pk": "_id",
            "id_lvl1": {"type": "SERIAL"},
            "f": {"type": "TEXT"}
        }
    }
})";

TEST(ImportConnector, NestedListOfDocumentsImportsUnchanged) {
	std::vector<ImportedCollection> imported = ImportConnectorMappings(kNestedDocuments);
	ASSERT_EQ(imported.size(), 1u);
	const Mapping &m = imported[0].mapping;
	EXPECT_EQ(imported[0].table, "col_nested");
	EXPECT_EQ(m.pk, "_id");
	ASSERT_EQ(m.arrays.size(), 1u);
	EXPECT_EQ(m.arrays[0].table, "col_array_lvl1");
	EXPECT_EQ(m.arrays[0].fk, "id_nested");
	EXPECT_EQ(m.arrays[0].id, "_id");
	ASSERT_EQ(m.arrays[0].arrays.size(), 1u);
	const ArrayMapping &lvl2 = m.arrays[0].arrays[0];
	EXPECT_EQ(lvl2.table, "col_array_lvl2");
	EXPECT_EQ(lvl2.fk, "id_lvl1");
	EXPECT_EQ(lvl2.id, "_id");

	convert::DocumentConverter converter(m);
	const auto &layout = converter.Layout();
	ASSERT_EQ(layout.size(), 3u);
	EXPECT_EQ(layout[2].columns[0].name, "id_lvl1");
	EXPECT_EQ(layout[2].columns[0].type, "text") << "the fk holds the middle table's generated text id";
	convert::ConvertedDocument rows =
		converter.Convert(*test::Doc(R"({"_id": 1, "a": [{"b": [{"f": "x"}, {"f": "y"}]}, {"b": [{"f": "z"}]}]})"));
	ASSERT_TRUE(rows.errors.empty());
	ASSERT_EQ(rows.children[0].rows.size(), 2u);
	ASSERT_EQ(rows.children[1].rows.size(), 3u);
	EXPECT_EQ(convert::ValueText(rows.children[1].rows[2][0]), "1.1");
	EXPECT_EQ(convert::ValueText(rows.children[1].rows[2][1]), "1.1.0");
	EXPECT_EQ(convert::ValueText(rows.children[1].rows[2][2]), "z");
}

TEST(ImportConnector, SerialForeignKeyOnlyForGeneratedParentKeys) {
	// At the first level the parent's key is the document's own: a SERIAL fk on a TEXT key is wrong.
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
	    "a": {"type": "_ARRAY", "fk": "c_id"}}, "a": {"pk": "id", "c_id": {"type": "SERIAL"}}}})",
					  "42804", "declares fk \"c_id\" as SERIAL but the parent's key is TEXT");
	ExpectImportError(R"({"db": {"c": {"pk": "id", "_id": {"dest": "id", "type": "TEXT"},
	    "a": {"type": "_ARRAY", "fk": "c_id"}}, "a": {"pk": "id", "c_id": {"type": "TEXT"},
	    "b": {"type": "_ARRAY", "fk": "a_id"}}, "b": {"pk": "id", "a_id": {"type": "BOOLEAN"}}}})",
					  "42804", "declares fk \"a_id\" as BOOLEAN");
}

} // namespace
} // namespace mongo_river::mapping
