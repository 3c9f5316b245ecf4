// mongo_copy_test.cpp: the resume filter of CollectionScan. A small model of MongoDB's ordering
// and comparison rules (bsontypes.h canonicalizeBSONType, BSONElement compare, and
// ComparisonMatchExpressionBase::matchesSingleElement: operators match only their operand's type
// bracket; NaN equals NaN and compares false otherwise) checks that, for every pair of sample _ids
// of mixed types, the filter built from "last" matches exactly the _ids that sort after it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/copy.hpp"

namespace mongo_river::mongo {
namespace {

bool IsNan(const bson_value_t &v) {
	return v.value_type == BSON_TYPE_DOUBLE && std::isnan(v.value.v_double);
}

double AsDouble(const bson_value_t &v) {
	switch (v.value_type) {
	case BSON_TYPE_INT32:
		return v.value.v_int32;
	case BSON_TYPE_INT64:
		return static_cast<double>(v.value.v_int64);
	default:
		return v.value.v_double;
	}
}

int Sign(int64_t x) {
	return x < 0 ? -1 : x > 0 ? 1 : 0;
}

int CompareBytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
	int c = std::memcmp(a, b, std::min(alen, blen));
	return c != 0 ? Sign(c) : Sign(static_cast<int64_t>(alen) - static_cast<int64_t>(blen));
}

int Compare(const bson_value_t &a, const bson_value_t &b);

// CompareDocs compares two documents element by element: type bracket, field name, value.
int CompareDocs(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen) {
	bson_t da, db;
	bson_init_static(&da, a, alen);
	bson_init_static(&db, b, blen);
	bson_iter_t ia, ib;
	bson_iter_init(&ia, &da);
	bson_iter_init(&ib, &db);
	while (true) {
		bool ma = bson_iter_next(&ia), mb = bson_iter_next(&ib);
		if (!ma || !mb)
			return ma == mb ? 0 : (ma ? 1 : -1);
		int c = Sign(IdBracket(bson_iter_type(&ia)) - IdBracket(bson_iter_type(&ib)));
		if (c == 0)
			c = Sign(std::strcmp(bson_iter_key(&ia), bson_iter_key(&ib)));
		if (c == 0)
			c = Compare(*bson_iter_value(&ia), *bson_iter_value(&ib));
		if (c != 0)
			return c;
	}
}

// Compare orders two values the way MongoDB sorts them (for the types the samples use).
int Compare(const bson_value_t &a, const bson_value_t &b) {
	int c = Sign(IdBracket(a.value_type) - IdBracket(b.value_type));
	if (c != 0)
		return c;
	switch (a.value_type) {
	case BSON_TYPE_DOUBLE:
	case BSON_TYPE_INT32:
	case BSON_TYPE_INT64: {
		if (IsNan(a) || IsNan(b))
			return IsNan(a) == IsNan(b) ? 0 : (IsNan(a) ? -1 : 1);
		double x = AsDouble(a), y = AsDouble(b);
		return x < y ? -1 : x > y ? 1 : 0;
	}
	case BSON_TYPE_UTF8:
		return CompareBytes(reinterpret_cast<const uint8_t *>(a.value.v_utf8.str), a.value.v_utf8.len,
							reinterpret_cast<const uint8_t *>(b.value.v_utf8.str), b.value.v_utf8.len);
	case BSON_TYPE_DOCUMENT:
		return CompareDocs(a.value.v_doc.data, a.value.v_doc.data_len, b.value.v_doc.data, b.value.v_doc.data_len);
	case BSON_TYPE_BINARY:
		if (a.value.v_binary.data_len != b.value.v_binary.data_len)
			return a.value.v_binary.data_len < b.value.v_binary.data_len ? -1 : 1;
		if (a.value.v_binary.subtype != b.value.v_binary.subtype)
			return a.value.v_binary.subtype < b.value.v_binary.subtype ? -1 : 1;
		return CompareBytes(a.value.v_binary.data, a.value.v_binary.data_len, b.value.v_binary.data,
							b.value.v_binary.data_len);
	case BSON_TYPE_OID:
		return CompareBytes(a.value.v_oid.bytes, 12, b.value.v_oid.bytes, 12);
	case BSON_TYPE_BOOL:
		return Sign(static_cast<int>(a.value.v_bool) - static_cast<int>(b.value.v_bool));
	case BSON_TYPE_DATE_TIME:
		return a.value.v_datetime < b.value.v_datetime ? -1 : a.value.v_datetime > b.value.v_datetime ? 1 : 0;
	case BSON_TYPE_TIMESTAMP: {
		uint64_t x = (uint64_t(a.value.v_timestamp.timestamp) << 32) | a.value.v_timestamp.increment;
		uint64_t y = (uint64_t(b.value.v_timestamp.timestamp) << 32) | b.value.v_timestamp.increment;
		return x < y ? -1 : x > y ? 1 : 0;
	}
	default:
		return 0; // MinKey, null, MaxKey: one value per bracket
	}
}

// Matches evaluates one {_id: {op: operand}} clause against x with MongoDB's matcher rules.
bool MatchesClause(const bson_t *clause, const bson_value_t &x) {
	bson_iter_t iter, cond;
	EXPECT_TRUE(bson_iter_init_find(&iter, clause, "_id") && bson_iter_recurse(&iter, &cond) && bson_iter_next(&cond));
	const std::string op = bson_iter_key(&cond);
	const bson_value_t &rhs = *bson_iter_value(&cond);
	if (op == "$type")
		return x.value_type == static_cast<bson_type_t>(rhs.value.v_int32);
	if (op == "$in")
		return false; // only ever the empty list
	if (IdBracket(x.value_type) != IdBracket(rhs.value_type))
		return false;
	if (IsNan(x) || IsNan(rhs)) {
		bool both = IsNan(x) && IsNan(rhs);
		return op == "$gt" ? false : both;
	}
	int c = Compare(x, rhs);
	if (op == "$eq")
		return c == 0;
	if (op == "$gt")
		return c > 0;
	if (op == "$gte")
		return c >= 0;
	ADD_FAILURE() << "unexpected operator " << op;
	return false;
}

bool Matches(const bson_t *filter, const bson_value_t &x) {
	bson_iter_t iter, clauses;
	if (bson_iter_init_find(&iter, filter, "_id")) // {_id: {$in: []}}
		return MatchesClause(filter, x);
	EXPECT_TRUE(bson_iter_init_find(&iter, filter, "$or") && bson_iter_recurse(&iter, &clauses));
	while (bson_iter_next(&clauses)) {
		Bson clause = BsonFromIter(&clauses);
		if (MatchesClause(clause.get(), x))
			return true;
	}
	return false;
}

const char *kSamples = R"({"v": [
	{"$minKey": 1}, null, {"$numberDouble": "NaN"}, {"$numberDouble": "-Infinity"}, -5, 2.5,
	{"$numberLong": "7"}, {"$numberDouble": "Infinity"}, "", "abc", "b", {}, {"a": 1}, {"a": 2}, {"b": 0},
	{"a": "x"}, {"$binary": {"base64": "", "subType": "00"}}, {"$binary": {"base64": "eA==", "subType": "00"}},
	{"$binary": {"base64": "eA==", "subType": "04"}}, {"$oid": "000000000000000000000000"},
	{"$oid": "5f0000000000000000000001"}, {"$oid": "ffffffffffffffffffffffff"}, false, true,
	{"$date": {"$numberLong": "-1"}}, {"$date": {"$numberLong": "5"}}, {"$timestamp": {"t": 0, "i": 0}},
	{"$timestamp": {"t": 2, "i": 1}}, {"$maxKey": 1}]})";

TEST(BuildResumeFilter, MatchesExactlyTheIdsAfterLast) {
	Bson samples = FromJson(kSamples, "samples");
	struct Value {
		bson_value_t v;
	};
	std::vector<Value> held;
	bson_iter_t iter, item;
	ASSERT_TRUE(bson_iter_init_find(&iter, samples.get(), "v") && bson_iter_recurse(&iter, &item));
	while (bson_iter_next(&item))
		held.push_back(Value{*bson_iter_value(&item)});
	for (size_t k = 1; k < held.size(); ++k)
		ASSERT_LT(Compare(held[k - 1].v, held[k].v), 0) << "samples must be sorted at " << k;
	for (const Value &held_last : held) {
		const bson_value_t *last = &held_last.v;
		Bson filter = BuildResumeFilter(last);
		for (const Value &held_x : held) {
			const bson_value_t *x = &held_x.v;
			Bson wrapped_last = WrapValue("v", last), wrapped_x = WrapValue("v", x);
			EXPECT_EQ(Matches(filter.get(), *x), Compare(*x, *last) > 0)
				<< "last " << ToRelaxedJson(wrapped_last.get()) << " x " << ToRelaxedJson(wrapped_x.get()) << " filter "
				<< ToRelaxedJson(filter.get());
		}
	}
}

TEST(BuildResumeFilter, ShapeForAnInteger) {
	bson_value_t five;
	five.value_type = BSON_TYPE_INT32;
	five.value.v_int32 = 5;
	Bson filter = BuildResumeFilter(&five);
	std::string json = ToCanonicalJson(filter.get());
	EXPECT_EQ(json.find(R"({ "$or" : [ { "_id" : { "$gt" : { "$numberInt" : "5" } } }, { "_id" : { "$gte" : "" } })"),
			  0u)
		<< json;
	EXPECT_NE(json.find(R"({ "_id" : { "$gte" : { "$oid" : "000000000000000000000000" } } })"), std::string::npos);
	EXPECT_EQ(json.find("NaN"), std::string::npos) << "numbers before 5 were read already: " << json;
}

TEST(BuildResumeFilter, NoLastMeansEverything) {
	EXPECT_EQ(bson_count_keys(BuildResumeFilter(nullptr).get()), 0u);
}

TEST(BuildResumeFilter, MaxKeyMeansNothing) {
	bson_value_t max;
	max.value_type = BSON_TYPE_MAXKEY;
	EXPECT_EQ(ToCanonicalJson(BuildResumeFilter(&max).get()), R"({ "_id" : { "$in" : [  ] } })");
}

} // namespace
} // namespace mongo_river::mongo
