// update_plan_test.cpp: the columns an update changes, planned from its update description alone,
// must equal the columns of the document as the update left it; whatever cannot be planned for
// sure must ask for the document (a lookup). The property test applies random $v:2 diffs to random
// documents with mongod's rules (ApplyDiff) and compares.
#include <gtest/gtest.h>

#include <random>

#include "mongo_river/convert/row.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/diff.hpp"
#include "test_bson.hpp"

namespace mongo_river::convert {
namespace {

using test::Doc;

const char *const kFlat = R"({
  "pk": "id",
  "columns": {
    "id":  {"path": "_id",   "type": "text"},
    "a":   {"path": "a",     "type": "bigint"},
    "bc":  {"path": "b.c",   "type": "bigint"},
    "bd":  {"path": "b.d",   "type": "text"},
    "bp":  {"path": "b.d",   "type": "boolean", "format": "presence"},
    "e":   {"path": "e",     "type": "jsonb"},
    "e1":  {"path": "e.1",   "type": "text", "format": "extjson"},
    "ghi": {"path": "g.h.i", "type": "text"},
    "f":   {"path": "f",     "type": "text"}
  }
})";

DocumentConverter Converter(const char *mapping) {
	return DocumentConverter(mapping::ParseMapping(mapping));
}

std::string Text(const Value &value) {
	return value.IsNull() ? "NULL" : ValueText(value);
}

// Plan plans an update given as a change stream's updateDescription (Extended JSON).
UpdatePlan Plan(const DocumentConverter &converter, const std::string &updated,
				const std::vector<std::string> &removed = {},
				const std::vector<std::pair<std::string, int64_t>> &truncated = {}, bool exact = false) {
	static std::vector<mongo::Bson> keep; // the plan's inputs point into the update document
	keep.push_back(Doc(updated));
	return converter.PlanUpdate(ReadUpdateChanges(keep.back().get(), removed, truncated, exact));
}

// Columns renders a plan's columns as "index=value" joined by spaces.
std::string Columns(const UpdatePlan &plan) {
	std::string out;
	for (const auto &[index, value] : plan.columns)
		out += (out.empty() ? "" : " ") + std::to_string(index) + "=" + Text(value);
	return out;
}

TEST(PlanUpdate, SetsMappedColumns) {
	DocumentConverter converter = Converter(kFlat);
	UpdatePlan plan = Plan(converter, R"({"a": 5, "f": "x"})");
	EXPECT_EQ(plan.lookup, "");
	EXPECT_EQ(Columns(plan), "1=5 8=x");
}

TEST(PlanUpdate, UnmappedFieldsChangeNothing) {
	DocumentConverter converter = Converter(kFlat);
	UpdatePlan plan = Plan(converter, R"({"zz": 5, "b.zz": 1})", {"yy"});
	EXPECT_EQ(plan.lookup, "");
	EXPECT_TRUE(plan.columns.empty());
}

TEST(PlanUpdate, RemovedColumnBecomesNullAndPresenceFalse) {
	DocumentConverter converter = Converter(kFlat);
	UpdatePlan plan = Plan(converter, "{}", {"b.d", "a"});
	EXPECT_EQ(plan.lookup, "");
	EXPECT_EQ(Columns(plan), "1=NULL 3=NULL 4=false");
}

TEST(PlanUpdate, ParentReplacedGivesNestedValues) {
	DocumentConverter converter = Converter(kFlat);
	UpdatePlan plan = Plan(converter, R"({"b": {"c": 7}, "g": 3})");
	EXPECT_EQ(plan.lookup, "");
	EXPECT_EQ(Columns(plan), "2=7 3=NULL 4=false 7=NULL");
}

TEST(PlanUpdate, PathUnderAColumnLooksUp) {
	DocumentConverter converter = Converter(kFlat);
	EXPECT_NE(Plan(converter, R"({"e.0": 1})").lookup, "");
	EXPECT_NE(Plan(converter, "{}", {"e.3"}).lookup, "");
	// e.1 has a column of its own, but e is a jsonb column too: its value needs the whole array.
	EXPECT_NE(Plan(converter, R"({"e.1": 1})").lookup, "");
}

TEST(PlanUpdate, TruncatedArrayOverlappingAColumnLooksUp) {
	DocumentConverter converter = Converter(kFlat);
	EXPECT_NE(Plan(converter, "{}", {}, {{"e", 1}}).lookup, "");
	EXPECT_EQ(Plan(converter, "{}", {}, {{"zz", 1}}).lookup, "");
}

TEST(PlanUpdate, DocumentColumnLooksUp) {
	DocumentConverter converter = Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
		"a": {"path": "a", "type": "text"}}, "document": "doc"})");
	EXPECT_NE(Plan(converter, R"({"zz": 1})").lookup, "");
}

TEST(PlanUpdate, ChildTableArrayLooksUp) {
	DocumentConverter converter = Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
		"t": {"path": "t", "type": "text"}},
		"arrays": {"items": {"path": "o.items", "table": "items", "fk": "oid", "position": "pos",
		"columns": {"sku": {"path": "sku", "type": "text"}}}}})");
	EXPECT_NE(Plan(converter, R"({"o.items.0.sku": "x"})").lookup, "");
	EXPECT_NE(Plan(converter, R"({"o": {}})").lookup, "");
	EXPECT_NE(Plan(converter, "{}", {}, {{"o.items", 0}}).lookup, "");
	EXPECT_EQ(Columns(Plan(converter, R"({"t": "x", "o.other": 1})")), "1=x");
}

TEST(PlanUpdate, DottedKeysLookUpUnlessThePathsAreExact) {
	DocumentConverter converter = Converter(R"({"pk": "id", "columns": {"id": {"path": "_id", "type": "text"},
		"odd": {"path": ["key.with.dots", "x"], "type": "text"}}})");
	EXPECT_NE(Plan(converter, R"({"zz": 1})").lookup, "");
	EXPECT_EQ(Plan(converter, R"({"zz": 1})", {}, {}, true).lookup, "");
}

TEST(PlanUpdate, EmptyKeysIdAndOverlapsLookUp) {
	DocumentConverter converter = Converter(kFlat);
	EXPECT_NE(Plan(converter, R"({"a..b": 1})").lookup, "");
	EXPECT_NE(Plan(converter, R"({"_id": 1})").lookup, "");
	EXPECT_NE(Plan(converter, R"({"b": {}, "b.c": 1})").lookup, "");
}

TEST(PlanUpdate, UnconvertibleValueLooksUp) {
	DocumentConverter converter = Converter(kFlat);
	EXPECT_NE(Plan(converter, R"({"a": "not a number"})").lookup, "");
}

TEST(PlanUpdate, ExactPathsFromOplogDiffs) {
	mongo::UpdateDescription plain = mongo::ParseDiff(Doc(R"({"u": {"a": 1}, "sb": {"u": {"c": 2}}})").get());
	EXPECT_TRUE(plain.exact_paths);
	mongo::UpdateDescription dotted = mongo::ParseDiff(Doc(R"({"u": {"x.y": 1}})").get());
	EXPECT_FALSE(dotted.exact_paths);
}

// RandomValue returns a random value as Extended JSON: numbers, strings, null, documents, arrays.
std::string RandomValue(std::mt19937 &rng, int depth = 0) {
	switch (rng() % (depth > 1 ? 4 : 6)) {
	case 0:
		return std::to_string(int(rng() % 100));
	case 1:
		return "\"s" + std::to_string(rng() % 10) + "\"";
	case 2:
		return "null";
	case 3:
		return std::to_string(int(rng() % 5)) + ".5";
	case 4:
		return R"({"c": )" + RandomValue(rng, depth + 1) + R"(, "d": )" + RandomValue(rng, depth + 1) +
			   R"(, "h": {"i": )" + RandomValue(rng, depth + 1) + "}}";
	default: {
		std::string out = "[";
		int n = int(rng() % 4);
		for (int i = 0; i < n; i++)
			out += (i ? ", " : "") + RandomValue(rng, depth + 1);
		return out + "]";
	}
	}
}

// Field returns the value of key in doc as a type tag: 'd' document, 'a' array (size in *size), '-' missing, 's' other.
char Kind(const bson_t *doc, const char *key, uint32_t *size = nullptr) {
	bson_iter_t iter;
	if (!bson_iter_init_find(&iter, doc, key))
		return '-';
	if (BSON_ITER_HOLDS_DOCUMENT(&iter))
		return 'd';
	if (BSON_ITER_HOLDS_ARRAY(&iter)) {
		if (size) {
			bson_iter_t child;
			bson_iter_recurse(&iter, &child);
			*size = 0;
			while (bson_iter_next(&child))
				++*size;
		}
		return 'a';
	}
	return 's';
}

// RandomDiff returns a random $v:2 diff that mongod could have written for pre: sub-diffs only into
// documents and arrays pre has, array elements set at most one past the end.
std::string RandomDiff(std::mt19937 &rng, const bson_t *pre) {
	const char *fields[] = {"a", "b", "e", "f", "g", "zz"};
	std::string u, i, d, s;
	auto add = [](std::string &section, const std::string &item) { section += (section.empty() ? "" : ", ") + item; };
	for (const char *field : fields) {
		uint32_t size = 0;
		char kind = Kind(pre, field, &size);
		switch (rng() % 6) {
		case 0:
			add(u, std::string("\"") + field + "\": " + RandomValue(rng));
			break;
		case 1:
			add(i, std::string("\"") + field + "\": " + RandomValue(rng));
			break;
		case 2:
			if (kind != '-')
				add(d, std::string("\"") + field + "\": false");
			break;
		case 3:
		case 4:
			if (kind == 'd') {
				bson_iter_t iter;
				bson_iter_init_find(&iter, pre, field);
				mongo::Bson sub = mongo::BsonFromIter(&iter);
				std::string inner = rng() % 2
										? R"("u": {"c": )" + RandomValue(rng) + "}"
										: (Kind(sub.get(), "d") != '-' ? R"("d": {"d": false})" : R"("i": {"d": 1})");
				if (Kind(sub.get(), "h") == 'd' && rng() % 2)
					inner += R"(, "sh": {"u": {"i": )" + RandomValue(rng) + "}}";
				add(s, std::string("\"s") + field + "\": {" + inner + "}");
			} else if (kind == 'a') {
				std::string inner = R"("a": true)";
				if (size > 0 && rng() % 3 == 0)
					inner += ", \"l\": " + std::to_string(rng() % size);
				else
					inner += ", \"u" + std::to_string(rng() % (size + 1)) + "\": " + RandomValue(rng);
				add(s, std::string("\"s") + field + "\": {" + inner + "}");
			}
			break;
		default:
			break;
		}
	}
	std::string out;
	if (!u.empty())
		out += "\"u\": {" + u + "}";
	if (!i.empty())
		out += std::string(out.empty() ? "" : ", ") + "\"i\": {" + i + "}";
	if (!d.empty())
		out += std::string(out.empty() ? "" : ", ") + "\"d\": {" + d + "}";
	if (!s.empty())
		out += std::string(out.empty() ? "" : ", ") + s;
	return "{" + out + "}";
}

// The property: for random documents and diffs, a plan without lookup gives exactly the row of the
// document the diff produces; the description is read both as a change stream gives it (dotted
// paths) and as the oplog does (exact paths).
TEST(PlanUpdate, RandomDiffsGiveTheRowsOfTheirPostImages) {
	const unsigned seed = std::random_device()();
	SCOPED_TRACE("seed " + std::to_string(seed));
	std::mt19937 rng(seed);
	DocumentConverter converter = Converter(kFlat);
	int planned = 0, looked_up = 0;
	for (int round = 0; round < 3000; round++) {
		std::string pre_json = R"({"_id": "k", "a": )" + RandomValue(rng) + R"(, "b": )" + RandomValue(rng) +
							   R"(, "e": )" + RandomValue(rng) + R"(, "f": )" + RandomValue(rng) + R"(, "g": )" +
							   RandomValue(rng) + "}";
		mongo::Bson pre = Doc(pre_json);
		ConvertedDocument before = converter.Convert(*pre);
		if (!before.errors.empty())
			continue; // such a document was rejected: it has no row to update
		std::string diff_json = RandomDiff(rng, pre.get());
		mongo::Bson diff = Doc(diff_json);
		mongo::Bson post = mongo::ApplyDiff(pre.get(), diff.get());
		ConvertedDocument after = converter.Convert(*post);
		mongo::UpdateDescription desc = mongo::ParseDiff(diff.get());
		for (bool exact : {false, true}) {
			std::vector<std::pair<std::string, int64_t>> truncated;
			for (const mongo::TruncatedArray &array : desc.truncated_arrays)
				truncated.emplace_back(array.field, array.new_size);
			UpdatePlan plan = converter.PlanUpdate(
				ReadUpdateChanges(desc.updated_fields.get(), desc.removed_fields, truncated, exact));
			SCOPED_TRACE("pre " + pre_json + " diff " + diff_json + " post " + mongo::ToRelaxedJson(post.get()));
			if (!plan.lookup.empty()) {
				looked_up++;
				continue;
			}
			planned++;
			ASSERT_TRUE(after.errors.empty()) << after.errors[0].Message();
			std::vector<Value> row = before.row;
			for (const auto &[index, value] : plan.columns)
				row[index] = value;
			ASSERT_EQ(row.size(), after.row.size());
			for (size_t c = 0; c < row.size(); c++)
				ASSERT_EQ(Text(row[c]), Text(after.row[c])) << "column " << c;
		}
	}
	EXPECT_GT(planned, 500);
	EXPECT_GT(looked_up, 100);
}

} // namespace
} // namespace mongo_river::convert
