// convert_test.cpp: BSON -> Value conversions: the §3 defaults, explicit targets, errors, edge values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "mongo_river/convert/convert.hpp"
#include "../../src/convert/internal.hpp"
#include "test_bson.hpp"

namespace mongo_river::convert {
namespace {

using test::ConvertJson;
using test::Doc;

// ExpectConversionError converts and checks the ConversionError's SQLSTATE and message fragment.
void ExpectConversionError(const std::string &json, const std::string &type, const std::string &sqlstate,
						   const std::string &needle, const std::string &path = "v") {
	try {
		Value v = ConvertJson(json, type, path);
		ADD_FAILURE() << "expected a ConversionError for " << json << " -> " << type << ", got " << ValueText(v);
	} catch (const ConversionError &e) {
		EXPECT_EQ(e.Sqlstate(), sqlstate) << e.Message();
		EXPECT_NE(e.Message().find(needle), std::string::npos) << "message: " << e.Message() << "\nwanted: " << needle;
		EXPECT_EQ(e.Path().substr(0, path.size()), path);
	}
}

template <typename T> T As(const Value &value) {
	EXPECT_TRUE(std::holds_alternative<T>(value.v)) << "variant index " << value.v.index();
	return std::holds_alternative<T>(value.v) ? std::get<T>(value.v) : T{};
}

TEST(ConvertDefaults, ScalarsOfSection3) {
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"$oid": "5f1d7a3e9b1e8a0012345678"}})", "text")).value,
			  "5f1d7a3e9b1e8a0012345678");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": "héllo"})", "text")).value, "héllo");
	Int i = As<Int>(ConvertJson(R"({"v": 42})", "integer"));
	EXPECT_EQ(i.value, 42);
	EXPECT_EQ(i.bytes, 4);
	i = As<Int>(ConvertJson(R"({"v": {"$numberLong": "9999999999"}})", "bigint"));
	EXPECT_EQ(i.value, 9999999999LL);
	EXPECT_EQ(i.bytes, 8);
	Float f = As<Float>(ConvertJson(R"({"v": 1.5})", "double precision"));
	EXPECT_EQ(f.value, 1.5);
	EXPECT_EQ(f.bytes, 8);
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "1234.5678"}})", "numeric")).text, "1234.5678");
	EXPECT_TRUE(As<bool>(ConvertJson(R"({"v": true})", "boolean")));
	Timestamp t = As<Timestamp>(ConvertJson(R"({"v": {"$date": {"$numberLong": "1700000000123"}}})", "timestamptz"));
	EXPECT_EQ(t.micros, 1700000000123000LL);
	EXPECT_TRUE(t.with_time_zone);
	EXPECT_TRUE(ConvertJson(R"({"v": null})", "integer").IsNull());
	EXPECT_TRUE(ConvertJson(R"({"v": {"$undefined": true}})", "text").IsNull());
}

TEST(ConvertDefaults, UuidAndBinary) {
	// 00112233-4455-6677-8899-aabbccddeeff in base64
	const std::string b64 = "ABEiM0RVZneImaq7zN3u/w==";
	Uuid u = As<Uuid>(ConvertJson(R"({"v": {"$binary": {"base64": ")" + b64 + R"(", "subType": "04"}}})", "uuid"));
	EXPECT_EQ(ValueText(Value{u}), "00112233-4455-6677-8899-aabbccddeeff");
	u = As<Uuid>(ConvertJson(R"({"v": {"$binary": {"base64": ")" + b64 + R"(", "subType": "03"}}})", "uuid"));
	EXPECT_EQ(ValueText(Value{u}), "00112233-4455-6677-8899-aabbccddeeff") << "subtype 3 keeps its bytes as they are";
	Bytes b = As<Bytes>(ConvertJson(R"({"v": {"$binary": {"base64": "AAEC", "subType": "00"}}})", "bytea"));
	EXPECT_EQ(b.data, std::string("\x00\x01\x02", 3));
	EXPECT_EQ(
		As<Text>(ConvertJson(R"({"v": {"$binary": {"base64": ")" + b64 + R"(", "subType": "04"}}})", "text")).value,
		"00112233-4455-6677-8899-aabbccddeeff");
	ExpectConversionError(R"({"v": {"$binary": {"base64": "AAEC", "subType": "00"}}})", "uuid", "42804",
						  "binary subtype 0 of 3 bytes is not a UUID");
}

TEST(ConvertDefaults, DocumentsArraysAndExoticTypesToJsonb) {
	JsonText j = As<JsonText>(ConvertJson(R"({"v": {"b": 1, "a": "x", "n": {"$numberLong": "5"}}})", "jsonb"));
	EXPECT_EQ(j.text, R"({"b":1,"a":"x","n":5})");
	EXPECT_TRUE(j.binary);
	j = As<JsonText>(ConvertJson(R"({"v": [1, "a", {"x": null}]})", "jsonb"));
	EXPECT_EQ(j.text, R"([1,"a",{"x":null}])");
	j = As<JsonText>(ConvertJson(R"({"v": [1]})", "json"));
	EXPECT_FALSE(j.binary);
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"$timestamp": {"t": 5, "i": 1}}})", "jsonb")).text,
			  R"({"$timestamp":{"t":5,"i":1}})");
	EXPECT_EQ(
		As<JsonText>(ConvertJson(R"({"v": {"$regularExpression": {"pattern": "^a", "options": "i"}}})", "jsonb")).text,
		R"({"$regularExpression":{"pattern":"^a","options":"i"}})");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"$minKey": 1}})", "jsonb")).text, R"({"$minKey":1})");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"$maxKey": 1}})", "jsonb")).text, R"({"$maxKey":1})");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"$code": "g1"}})", "jsonb")).text, R"({"$code":"g1"})");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": "s"})", "jsonb")).text, R"("s")");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"$numberDouble": "NaN"}})", "jsonb")).text,
			  R"({"$numberDouble":"NaN"})");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"$date": {"$numberLong": "0"}}})", "jsonb")).text,
			  R"({"$date":"1970-01-01T00:00:00Z"})");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"a": [1]}})", "text")).value, R"({"a":[1]})");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"$symbol": "sym"}})", "text")).value, "sym");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"$code": "g1"}})", "text")).value, "g1");
}

TEST(ConvertExplicit, NumbersToTextAndNumeric) {
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": 42})", "text")).value, "42");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": 0.1})", "text")).value, "0.1");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": true})", "varchar(5)")).value, "true");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"$date": {"$numberLong": "1700000000123"}}})", "text")).value,
			  "2023-11-14T22:13:20.123Z");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": 42})", "numeric")).text, "42");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberLong": "-9223372036854775808"}})", "numeric")).text,
			  "-9223372036854775808");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": 0.1})", "numeric(10,2)")).text, "0.1");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": 1e300})", "numeric")).text, "1e+300");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": "-12.50e3"})", "numeric")).text, "-12.50e3");
	ExpectConversionError(R"({"v": "12,5"})", "numeric", "22P02", "not a decimal number");
	ExpectConversionError(R"({"v": true})", "numeric", "42804", "no conversion from bool");
}

TEST(ConvertExplicit, IntegerRangesNeverWrap) {
	ExpectConversionError(R"({"v": {"$numberLong": "9999999999"}})", "integer", "22003",
						  "cannot convert int64 9999999999 at \"stats.count\" to integer: out of range", "stats.count");
	ExpectConversionError(R"({"v": 40000})", "smallint", "22003", "to smallint: out of range");
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": -32768})", "int2")).value, -32768);
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": {"$numberLong": "-2147483648"}})", "int4")).value, -2147483648LL);
	ExpectConversionError(R"({"v": {"$numberLong": "2147483648"}})", "int4", "22003", "out of range");
	Int i = As<Int>(ConvertJson(R"({"v": 7})", "bigint"));
	EXPECT_EQ(i.bytes, 8);
}

TEST(ConvertExplicit, DoublesToIntegersOnlyWhenIntegral) {
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": 3.0})", "integer")).value, 3);
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": -0.0})", "integer")).value, 0);
	ExpectConversionError(R"({"v": 3.5})", "integer", "22P02",
						  "cannot convert double 3.5 at \"v\" to integer: has a fractional part");
	ExpectConversionError(R"({"v": 1e20})", "bigint", "22003", "out of range");
	ExpectConversionError(R"({"v": 9223372036854775808.0})", "bigint", "22003", "out of range");
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": -9223372036854775808.0})", "bigint")).value, INT64_MIN);
	ExpectConversionError(R"({"v": {"$numberDouble": "NaN"}})", "integer", "22003", "NaN and infinities");
	ExpectConversionError(R"({"v": {"$numberDouble": "Infinity"}})", "bigint", "22003", "NaN and infinities");
}

TEST(ConvertExplicit, NanAndInfinity) {
	EXPECT_TRUE(std::isnan(As<Float>(ConvertJson(R"({"v": {"$numberDouble": "NaN"}})", "float8")).value));
	EXPECT_EQ(As<Float>(ConvertJson(R"({"v": {"$numberDouble": "-Infinity"}})", "double precision")).value, -INFINITY);
	EXPECT_EQ(As<Float>(ConvertJson(R"({"v": {"$numberDouble": "Infinity"}})", "real")).value, INFINITY);
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDouble": "NaN"}})", "numeric")).text, "NaN");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDouble": "Infinity"}})", "numeric")).text, "Infinity");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDouble": "-Infinity"}})", "numeric")).text, "-Infinity");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "NaN"}})", "numeric")).text, "NaN");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "-Infinity"}})", "numeric")).text, "-Infinity");
	EXPECT_TRUE(std::isnan(As<Float>(ConvertJson(R"({"v": {"$numberDecimal": "NaN"}})", "float8")).value));
	ExpectConversionError(R"({"v": {"$numberDecimal": "Infinity"}})", "integer", "22003", "NaN and infinities");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"$numberDouble": "-Infinity"}})", "text")).value, "-Infinity");
}

TEST(ConvertExplicit, Decimal128IsExact) {
	EXPECT_EQ(
		As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "1234567890123456789012345678901234"}})", "numeric")).text,
		"1234567890123456789012345678901234");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "0.1000"}})", "numeric")).text, "0.1000");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "-0"}})", "numeric")).text, "-0");
	EXPECT_EQ(As<Numeric>(ConvertJson(R"({"v": {"$numberDecimal": "1E+300"}})", "numeric")).text, "1E+300");
	EXPECT_EQ(As<Text>(ConvertJson(R"({"v": {"$numberDecimal": "9.999999999999999999999999999999999E+6144"}})", "text"))
				  .value,
			  "9.999999999999999999999999999999999E+6144");
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": {"$numberDecimal": "4.20E+1"}})", "integer")).value, 42);
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": {"$numberDecimal": "-9223372036854775808"}})", "bigint")).value, INT64_MIN);
	ExpectConversionError(R"({"v": {"$numberDecimal": "9223372036854775808"}})", "bigint", "22003", "out of range");
	ExpectConversionError(R"({"v": {"$numberDecimal": "1.5"}})", "integer", "22P02",
						  "cannot convert decimal128 1.5 at \"v\" to integer: has a fractional part");
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": {"$numberDecimal": "1.000"}})", "integer")).value, 1);
	EXPECT_EQ(As<Float>(ConvertJson(R"({"v": {"$numberDecimal": "0.1"}})", "float8")).value, 0.1);
	ExpectConversionError(R"({"v": {"$numberDecimal": "1E+400"}})", "float8", "22003", "out of range");
}

TEST(ConvertExplicit, IntegersToFloatsOnlyWhenExact) {
	EXPECT_EQ(As<Float>(ConvertJson(R"({"v": 16777216})", "real")).value, 16777216.0);
	ExpectConversionError(R"({"v": 16777217})", "real", "22003", "cannot be represented exactly");
	EXPECT_EQ(As<Float>(ConvertJson(R"({"v": {"$numberLong": "9007199254740992"}})", "float8")).value,
			  9007199254740992.0);
	ExpectConversionError(R"({"v": {"$numberLong": "9007199254740993"}})", "float8", "22003",
						  "cannot be represented exactly");
	ExpectConversionError(R"({"v": {"$numberLong": "9223372036854775807"}})", "float8", "22003", "exactly");
	ExpectConversionError(R"({"v": 1e39})", "real", "22003", "out of range for real");
	ExpectConversionError(R"({"v": 1e-50})", "real", "22003", "out of range for real");
	Float f = As<Float>(ConvertJson(R"({"v": 0.5})", "float4"));
	EXPECT_EQ(f.bytes, 4);
}

TEST(ConvertExplicit, StringsParsedStrictly) {
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": "42"})", "integer")).value, 42);
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": "-7"})", "smallint")).value, -7);
	ExpectConversionError(R"({"v": "4.2"})", "integer", "22P02", "not an integer in decimal digits");
	ExpectConversionError(R"({"v": " 42"})", "integer", "22P02", "not an integer");
	ExpectConversionError(R"({"v": "1e3"})", "integer", "22P02", "not an integer");
	ExpectConversionError(R"({"v": ""})", "integer", "22P02", "not an integer");
	ExpectConversionError(R"({"v": "99999999999"})", "integer", "22003", "out of range");
	EXPECT_EQ(As<Float>(ConvertJson(R"({"v": "2.5"})", "float8")).value, 2.5);
	ExpectConversionError(R"({"v": "2,5"})", "float8", "22P02", "not a number");
	EXPECT_TRUE(As<bool>(ConvertJson(R"({"v": "TRUE"})", "boolean")));
	EXPECT_FALSE(As<bool>(ConvertJson(R"({"v": "false"})", "bool")));
	ExpectConversionError(R"({"v": "yes"})", "boolean", "22P02", "only \"true\" and \"false\"");
	Uuid u = As<Uuid>(ConvertJson(R"({"v": "00112233-4455-6677-8899-AABBCCDDEEFF"})", "uuid"));
	EXPECT_EQ(ValueText(Value{u}), "00112233-4455-6677-8899-aabbccddeeff");
	u = As<Uuid>(ConvertJson(R"({"v": "00112233445566778899aabbccddeeff"})", "uuid"));
	EXPECT_EQ(u.bytes[15], 0xff);
	ExpectConversionError(R"({"v": "not-a-uuid"})", "uuid", "22P02",
						  "cannot convert string \"not-a-uuid\" at \"v\" to uuid: not a UUID");
	EXPECT_EQ(As<Input>(ConvertJson(R"({"v": "2024-02-29 10:00"})", "timestamptz")).text, "2024-02-29 10:00");
	EXPECT_EQ(As<Input>(ConvertJson(R"({"v": "2024-02-29"})", "date")).text, "2024-02-29");
	EXPECT_EQ(As<Bytes>(ConvertJson(R"({"v": "ab"})", "bytea")).data, "ab");
}

TEST(ConvertExplicit, TypeMismatchesNameBothSides) {
	ExpectConversionError(R"({"v": true})", "integer", "42804",
						  "cannot convert bool true at \"v\" to integer: no conversion from bool");
	ExpectConversionError(R"({"v": {"a": 1}})", "integer", "42804", "cannot convert document at \"v\" to integer");
	ExpectConversionError(R"({"v": 5})", "timestamptz", "42804", "no conversion from int32");
	ExpectConversionError(R"({"v": 5})", "uuid", "42804", "no conversion from int32");
}

TEST(ConvertExplicit, OtherTypesGoThroughInput) {
	EXPECT_EQ(As<Input>(ConvertJson(R"({"v": "Hello"})", "citext")).text, "Hello");
	EXPECT_EQ(As<Input>(ConvertJson(R"({"v": 42})", "inet")).text, "42");
	EXPECT_EQ(As<Input>(ConvertJson(R"({"v": {"a": 1}})", "hstore")).text, R"({"a":1})");
	Array a = As<Array>(ConvertJson(R"({"v": ["x", null]})", "citext[]"));
	ASSERT_EQ(a.elements.size(), 2u);
	EXPECT_EQ(As<Input>(a.elements[0]).text, "x");
	EXPECT_TRUE(a.elements[1].IsNull());
}

TEST(ConvertExplicit, TimestampsAndDates) {
	Timestamp t = As<Timestamp>(ConvertJson(R"({"v": {"$date": {"$numberLong": "1000"}}})", "timestamp"));
	EXPECT_EQ(t.micros, 1000000);
	EXPECT_FALSE(t.with_time_zone);
	EXPECT_EQ(As<Date>(ConvertJson(R"({"v": {"$date": {"$numberLong": "86400000"}}})", "date")).days, 1);
	EXPECT_EQ(As<Date>(ConvertJson(R"({"v": {"$date": {"$numberLong": "-3600000"}}})", "date")).days, -1)
		<< "1969-12-31T23:00Z is on 1969-12-31 (floor, UTC)";
	EXPECT_EQ(As<Timestamp>(ConvertJson(R"({"v": {"$timestamp": {"t": 1700000000, "i": 3}}})", "timestamptz")).micros,
			  1700000000000000LL);
	EXPECT_EQ(As<Int>(ConvertJson(R"({"v": {"$timestamp": {"t": 1, "i": 2}}})", "bigint")).value, (1LL << 32) | 2);
	ExpectConversionError(R"({"v": {"$timestamp": {"t": 1, "i": 2}}})", "integer", "42804", "no conversion");
}

struct EdgeDate {
	const char *millis;
	const char *iso;
	const char *pg;
};

TEST(ConvertExplicit, EdgeDates) {
	const EdgeDate cases[] = {
		{"-62135596800000", "0001-01-01T00:00:00.000Z", "0001-01-01 00:00:00+00"},
		{"-2208988800000", "1900-01-01T00:00:00.000Z", "1900-01-01 00:00:00+00"},
		{"-1", "1969-12-31T23:59:59.999Z", "1969-12-31 23:59:59.999+00"},
		{"2147483648000", "2038-01-19T03:14:08.000Z", "2038-01-19 03:14:08+00"},
		{"253402300799999", "9999-12-31T23:59:59.999Z", "9999-12-31 23:59:59.999+00"},
		{"253402300800000", "+010000-01-01T00:00:00.000Z", "10000-01-01 00:00:00+00"},
		{"-62135596800001", "0000-12-31T23:59:59.999Z", "0001-12-31 23:59:59.999+00 BC"},
		{"-210866803200000", "-004713-11-24T00:00:00.000Z", "4714-11-24 00:00:00+00 BC"},
		{"951782400000", "2000-02-29T00:00:00.000Z", "2000-02-29 00:00:00+00"},
	};
	for (const EdgeDate &c : cases) {
		std::string json = std::string(R"({"v": {"$date": {"$numberLong": ")") + c.millis + "\"}}}";
		Timestamp t = As<Timestamp>(ConvertJson(json, "timestamptz"));
		EXPECT_EQ(t.micros, std::stoll(c.millis) * 1000) << c.millis;
		EXPECT_EQ(ValueText(Value{t}), c.pg) << c.millis;
		EXPECT_EQ(As<Text>(ConvertJson(json, "text")).value, c.iso) << c.millis;
	}
	EXPECT_EQ(ValueText(ConvertJson(R"({"v": {"$date": {"$numberLong": "-62135596800000"}}})", "date")), "0001-01-01");
	EXPECT_EQ(ValueText(ConvertJson(R"({"v": {"$date": {"$numberLong": "-62135596800001"}}})", "date")),
			  "0001-12-31 BC");
	ExpectConversionError(R"({"v": {"$date": {"$numberLong": "-210866803200001"}}})", "timestamptz", "22008",
						  "before 4714-11-24 BC");
	ExpectConversionError(R"({"v": {"$date": {"$numberLong": "-9223372036854775808"}}})", "date", "22008", "before");
	ExpectConversionError(R"({"v": {"$date": {"$numberLong": "9223372036854775807"}}})", "timestamptz", "22008",
						  "after PostgreSQL's last timestamp");
	Timestamp far =
		As<Timestamp>(ConvertJson(R"({"v": {"$date": {"$numberLong": "9223372036854775"}}})", "timestamptz"));
	EXPECT_EQ(far.micros, 9223372036854775000LL);
}

TEST(ConvertArrays, ScalarArrays) {
	Array a = As<Array>(ConvertJson(R"({"v": [1, 2, null, {"$numberLong": "3"}]})", "integer[]"));
	ASSERT_EQ(a.elements.size(), 4u);
	EXPECT_EQ(As<Int>(a.elements[0]).value, 1);
	EXPECT_TRUE(a.elements[2].IsNull());
	EXPECT_EQ(As<Int>(a.elements[3]).value, 3);
	EXPECT_EQ(ValueText(Value{a}), R"({"1","2",NULL,"3"})");
	a = As<Array>(ConvertJson(R"({"v": ["a", "b"]})", "text[]"));
	EXPECT_EQ(As<Text>(a.elements[1]).value, "b");
	EXPECT_TRUE(As<Array>(ConvertJson(R"({"v": []})", "text[]")).elements.empty());
	ExpectConversionError(R"({"v": ["a", {"x": 1}]})", "text[]", "42804",
						  "cannot convert document at \"v.1\" to text[]: a nested document cannot be an element");
	ExpectConversionError(R"({"v": [[1]]})", "integer[]", "42804", "at \"v.0\" to integer[]: a nested array");
	ExpectConversionError(R"({"v": [1, 2.5]})", "integer[]", "22P02", "at \"v.1\" to integer: has a fractional part");
	ExpectConversionError(R"({"v": 1})", "integer[]", "42804", "expected an array");
	a = As<Array>(ConvertJson(R"({"v": [{"x": 1}, [2], 3]})", "jsonb[]"));
	EXPECT_EQ(As<JsonText>(a.elements[0]).text, R"({"x":1})");
	EXPECT_EQ(As<JsonText>(a.elements[1]).text, R"([2])");
}

TEST(ConvertText, NulAndInvalidUtf8) {
	ExpectConversionError("{\"v\": \"a\\u0000b\"}", "text", "22021", "jsonb/text cannot hold NUL");
	ExpectConversionError("{\"v\": {\"k\": \"a\\u0000b\"}}", "jsonb", "22021", "jsonb/text cannot hold NUL");
	ExpectConversionError("{\"v\": [\"ok\", {\"k\": \"a\\u0000b\"}]}", "jsonb", "22021", "at \"v.1.k\"");
	EXPECT_EQ(As<Bytes>(ConvertJson("{\"v\": \"a\\u0000b\"}", "bytea")).data, std::string("a\0b", 3));

	bson_t doc;
	bson_init(&doc);
	const char bad[] = "a\xff\xfe";
	bson_append_utf8(&doc, "v", 1, bad, 3);
	bson_iter_t iter;
	ASSERT_TRUE(bson_iter_init_find(&iter, &doc, "v"));
	try {
		ConvertValue(*bson_iter_value(&iter), ClassifyType("text"), "v");
		ADD_FAILURE() << "invalid UTF-8 accepted";
	} catch (const ConversionError &e) {
		EXPECT_EQ(e.Sqlstate(), "22021");
		EXPECT_NE(e.Message().find("not valid UTF-8"), std::string::npos) << e.Message();
		EXPECT_EQ(e.BsonType(), "string");
	}
	EXPECT_EQ(DocumentIdText(*bson_iter_value(&iter)), "\"a\\xff\\xfe\"");
	bson_destroy(&doc);
}

TEST(ConvertText, LongStringsArePreviewedShort) {
	std::string long_text(200, 'x');
	try {
		ConvertJson("{\"v\": \"" + long_text + "\"}", "integer");
		FAIL();
	} catch (const ConversionError &e) {
		EXPECT_NE(e.Message().find("\"" + std::string(40, 'x') + "...\""), std::string::npos) << e.Message();
		EXPECT_LT(e.Message().size(), 120u);
	}
}

TEST(ConvertText, DeepNestingToJsonb) {
	std::string json = "{\"v\": ";
	for (int i = 0; i < 90; ++i)
		json += "{\"a\": ";
	json += "1";
	for (int i = 0; i < 90; ++i)
		json += "}";
	json += "}";
	JsonText j = As<JsonText>(ConvertJson(json, "jsonb"));
	EXPECT_EQ(j.text.substr(0, 10), R"({"a":{"a":)");
	EXPECT_NE(j.text.find(R"({"a":1})"), std::string::npos);
}

// NestedValue returns a document {"a": {"a": ... {"x": 1}}} of `levels` levels (built with libbson:
// its JSON reader stops at 100 levels).
mongo::Bson NestedValue(int levels) {
	mongo::Bson cur(bson_new());
	BSON_APPEND_INT32(cur.get(), "x", 1);
	for (int i = 1; i < levels; ++i) {
		mongo::Bson outer(bson_new());
		BSON_APPEND_DOCUMENT(outer.get(), "a", cur.get());
		cur = std::move(outer);
	}
	return cur;
}

std::size_t Count(const std::string &text, const std::string &needle) {
	std::size_t n = 0;
	for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
		++n;
	return n;
}

// MongoDB stores documents 180 levels deep; libbson renders JSON only 201 levels deep (the value
// plus the wrapper RenderJson puts around it) and silently writes "{ ... }" past that: every level
// up to 200 reaches jsonb, a deeper value fails with a reason instead of being cut.
TEST(ConvertText, NestingAsDeepAsMongoDBStoresReachesJsonb) {
	for (int levels : {180, 200}) {
		mongo::Bson value = NestedValue(levels);
		bson_value_t v;
		v.value_type = BSON_TYPE_DOCUMENT;
		v.value.v_doc.data = const_cast<std::uint8_t *>(bson_get_data(value.get()));
		v.value.v_doc.data_len = value.get()->len;
		JsonText j = As<JsonText>(ConvertValue(v, ClassifyType("jsonb"), "v"));
		EXPECT_EQ(Count(j.text, R"({"a":)"), static_cast<std::size_t>(levels - 1)) << levels;
		EXPECT_NE(j.text.find(R"({"x":1})"), std::string::npos) << levels;
		EXPECT_EQ(j.text.find("..."), std::string::npos) << levels;
	}
	mongo::Bson doc = NestedValue(180);
	std::string whole = DocumentJson(*doc.get());
	EXPECT_EQ(Count(whole, R"({"a":)"), 179u);
	EXPECT_NE(whole.find(R"({"x":1})"), std::string::npos);
	mongo::Bson deeper = NestedValue(201);
	bson_value_t v;
	v.value_type = BSON_TYPE_DOCUMENT;
	v.value.v_doc.data = const_cast<std::uint8_t *>(bson_get_data(deeper.get()));
	v.value.v_doc.data_len = deeper.get()->len;
	try {
		ConvertValue(v, ClassifyType("jsonb"), "v");
		ADD_FAILURE() << "a 201-level value was converted";
	} catch (const ConversionError &e) {
		EXPECT_NE(e.Message().find("nested deeper than 200 levels"), std::string::npos) << e.Message();
	}
}

TEST(ExtendedJson, ValuesAndDocumentIds) {
	mongo::Bson doc = Doc(R"({"s": "p1", "o": {"$oid": "5f1d7a3e9b1e8a0012345678"}, "i": 1, "l": {"$numberLong": "1"},
	    "d": 1.0, "a": [1, 2], "x": {"k": "v"}})");
	auto value = [&doc](const char *key) {
		bson_iter_t iter;
		bson_iter_init_find(&iter, doc.get(), key);
		return *bson_iter_value(&iter);
	};
	EXPECT_EQ(DocumentIdText(value("s")), "p1");
	EXPECT_EQ(DocumentIdText(value("o")), R"({"$oid":"5f1d7a3e9b1e8a0012345678"})");
	EXPECT_EQ(DocumentIdText(value("i")), R"({"$numberInt":"1"})");
	EXPECT_EQ(DocumentIdText(value("l")), R"({"$numberLong":"1"})");
	EXPECT_EQ(DocumentIdText(value("d")), R"({"$numberDouble":"1.0"})");
	EXPECT_EQ(ExtendedJson(value("a"), true, "a"), R"([{"$numberInt":"1"},{"$numberInt":"2"}])");
	EXPECT_EQ(ExtendedJson(value("a"), false, "a"), R"([1,2])");
	EXPECT_EQ(ExtendedJson(value("x"), false, "x"), R"({"k":"v"})");
	EXPECT_EQ(DocumentJson(*Doc(R"({"a": 1})")), R"({"a":1})");
}

TEST(ExtendedJson, RelaxedDoublesInShortestForm) {
	// libbson prints relaxed doubles with %.20g (0.10000000000000000555); jsonb gets the shortest form
	// that reads back as the same double, as numeric and text columns do.
	EXPECT_EQ(DocumentJson(*Doc(R"({"x": 0.1, "y": 1e-7})")), R"({"x":0.1,"y":1e-07})");
	EXPECT_EQ(DocumentJson(*Doc(R"({"a": [0.1, -2.5, 3.0, -0.0, 1e300, 5e-324], "n": 7, "l": {"$numberLong": "-9"}})")),
			  R"({"a":[0.1,-2.5,3.0,-0.0,1e+300,5e-324],"n":7,"l":-9})");
	EXPECT_EQ(DocumentJson(*Doc(R"({"s": "0.10000000000000000555 1e-7", "k": {"0.1": 0.30000000000000004}})")),
			  R"({"s":"0.10000000000000000555 1e-7","k":{"0.1":0.30000000000000004}})");
	EXPECT_EQ(DocumentJson(*Doc(R"({"nan": {"$numberDouble": "NaN"}, "inf": {"$numberDouble": "-Infinity"}})")),
			  R"({"nan":{"$numberDouble":"NaN"},"inf":{"$numberDouble":"-Infinity"}})");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": 0.1})", "jsonb")).text, "0.1");
	EXPECT_EQ(As<JsonText>(ConvertJson(R"({"v": {"w": 1e-7}})", "jsonb")).text, R"({"w":1e-07})");
	// Every double reads back unchanged.
	for (double d : {0.1, 1.0 / 3.0, 123456.789e200, 2.2250738585072014e-308, 4.9e-324, 1.7976931348623157e308}) {
		bson_t doc = BSON_INITIALIZER;
		BSON_APPEND_DOUBLE(&doc, "d", d);
		std::string json = DocumentJson(doc);
		bson_destroy(&doc);
		EXPECT_EQ(std::strtod(json.substr(5, json.size() - 6).c_str(), nullptr), d) << json;
	}
	// Canonical Extended JSON (document ids, "format": "extjson") is unchanged.
	EXPECT_EQ(ExtendedJson(*bson_iter_value([] {
				  static mongo::Bson d = Doc(R"({"d": 0.1})");
				  static bson_iter_t iter;
				  bson_iter_init_find(&iter, d.get(), "d");
				  return &iter;
			  }()),
						   true, "d"),
			  R"({"$numberDouble":"0.10000000000000000555"})");
}

TEST(DefaultTypeName, Section3Table) {
	mongo::Bson doc = Doc(R"({"s": "x", "o": {"$oid": "5f1d7a3e9b1e8a0012345678"}, "i": 1, "l": {"$numberLong": "1"},
	    "d": 1.5, "m": {"$numberDecimal": "1"}, "b": true, "t": {"$date": {"$numberLong": "0"}},
	    "u": {"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}},
	    "y": {"$binary": {"base64": "AA==", "subType": "00"}}, "x": {}, "a": [], "n": null,
	    "ts": {"$timestamp": {"t": 1, "i": 1}}})");
	const std::pair<const char *, const char *> expected[] = {
		{"s", "text"},
		{"o", "text"},
		{"i", "integer"},
		{"l", "bigint"},
		{"d", "double precision"},
		{"m", "numeric"},
		{"b", "boolean"},
		{"t", "timestamptz"},
		{"u", "uuid"},
		{"y", "bytea"},
		{"x", "jsonb"},
		{"a", "jsonb"},
		{"n", ""},
		{"ts", "jsonb"},
	};
	for (const auto &[key, type] : expected) {
		bson_iter_t iter;
		ASSERT_TRUE(bson_iter_init_find(&iter, doc.get(), key));
		EXPECT_EQ(DefaultTypeName(*bson_iter_value(&iter)), type) << key;
	}
}

TEST(FindPath, DottedArraysAndMissing) {
	mongo::Bson doc = Doc(R"({"a": {"b": [10, {"c": "deep"}]}, "key.with.dots": {"x": 5}, "n": null})");
	bson_iter_t iter;
	ASSERT_TRUE(FindPath(*doc, {"a", "b", "1", "c"}, &iter));
	EXPECT_STREQ(bson_iter_utf8(&iter, nullptr), "deep");
	ASSERT_TRUE(FindPath(*doc, {"a", "b", "0"}, &iter));
	EXPECT_EQ(bson_iter_int32(&iter), 10);
	ASSERT_TRUE(FindPath(*doc, {"key.with.dots", "x"}, &iter));
	EXPECT_EQ(bson_iter_int32(&iter), 5);
	EXPECT_FALSE(FindPath(*doc, {"a", "b", "2"}, &iter));
	EXPECT_FALSE(FindPath(*doc, {"a", "x"}, &iter));
	EXPECT_FALSE(FindPath(*doc, {"n", "x"}, &iter));
	EXPECT_FALSE(FindPath(*doc, {"a", "b", "0", "c"}, &iter));
	EXPECT_FALSE(FindPath(*doc, {"key"}, &iter));
	EXPECT_FALSE(FindPath(*doc, {}, &iter));
}

} // namespace
} // namespace mongo_river::convert

namespace mongo_river::convert {
namespace {

std::string CopyField(const Value &value) {
	std::string out;
	AppendCopyField(value, &out);
	return out;
}

TEST(CopyField, NullAndEscapes) {
	EXPECT_EQ(CopyField(Value{}), "\\N");
	EXPECT_EQ(CopyField(Value{Text{"a\tb\nc\rd\\e"}}), "a\\tb\\nc\\rd\\\\e");
	EXPECT_EQ(CopyField(Value{Text{"\\N"}}), "\\\\N"); // the text \N, not NULL
	EXPECT_EQ(CopyField(Value{Input{"1 day\t"}}), "1 day\\t");
	EXPECT_EQ(CopyField(Value{JsonText{"{\"a\": \"x\\ny\"}", true}}), "{\"a\": \"x\\\\ny\"}");
}

TEST(CopyField, RenderedKinds) {
	EXPECT_EQ(CopyField(Value{true}), "true");
	EXPECT_EQ(CopyField(Value{Int{-12, 4}}), "-12");
	EXPECT_EQ(CopyField(Value{Float{0.1, 8}}), "0.1");
	EXPECT_EQ(CopyField(Value{Float{-std::numeric_limits<double>::infinity(), 8}}), "-Infinity");
	EXPECT_EQ(CopyField(Value{Timestamp{1500, true}}), "1970-01-01 00:00:00.0015+00");
	EXPECT_EQ(CopyField(Value{Bytes{std::string("\x01\xff", 2)}}), "\\\\x01ff");
	Array array;
	array.elements = {Value{Text{"a\"b"}}, Value{}, Value{Text{"c\\d"}}};
	EXPECT_EQ(CopyField(Value{array}), "{\"a\\\\\"b\",NULL,\"c\\\\\\\\d\"}");
}

TEST(CopyField, RealIsRenderedAsTheFloatItIsStoredAs) {
	// 0.1 as a double is not 0.1f; a real column stores 0.1f, whose shortest digits are "0.1".
	EXPECT_EQ(ValueText(Value{Float{static_cast<double>(0.1f), 4}}), "0.1");
	EXPECT_EQ(ValueText(Value{Float{static_cast<double>(0.1f), 8}}), "0.10000000149011612");
	EXPECT_EQ(ValueText(Value{Float{std::nan(""), 4}}), "NaN");
}

} // namespace
} // namespace mongo_river::convert

namespace mongo_river::convert {
namespace {

using test::Doc;

// RandomKeyedDoc builds a document of random elements whose names repeat, include "" and the
// path keys, some holding documents or arrays (paths then descend into them).
mongo::Bson RandomKeyedDoc(std::mt19937 &rng, int depth = 0) {
	static const char *const kNames[] = {"", "a", "b", "ab", "a.b", "0", "1", "_id", "c"};
	mongo::Bson doc(bson_new());
	const int n = int(rng() % 7);
	for (int i = 0; i < n; ++i) {
		const char *name = kNames[rng() % 9];
		switch (rng() % 4) {
		case 0:
			BSON_APPEND_INT32(doc.get(), name, int32_t(rng() % 1000));
			break;
		case 1:
			BSON_APPEND_UTF8(doc.get(), name, std::to_string(rng() % 1000).c_str());
			break;
		default:
			if (depth < 2) {
				mongo::Bson inner = RandomKeyedDoc(rng, depth + 1);
				if (rng() % 2)
					BSON_APPEND_DOCUMENT(doc.get(), name, inner.get());
				else
					BSON_APPEND_ARRAY(doc.get(), name, inner.get()); // numeric or not: both read alike
			} else {
				BSON_APPEND_NULL(doc.get(), name);
			}
		}
	}
	return doc;
}

TEST(FindPath, OnePassLookupFindsWhatFindPathFinds) {
	// A row's columns find their first keys in one pass (TopKeys); each must land on the very element
	// FindPath finds: the first of a repeated name, "" as a name, nested paths under it.
	std::mt19937 rng(5);
	static const char *const kKeys[] = {"", "a", "b", "ab", "a.b", "0", "1", "_id", "c", "zz"};
	int found = 0;
	for (int round = 0; round < 4000; ++round) {
		std::vector<mapping::Path> paths;
		std::vector<std::string> keys;
		std::vector<std::size_t> top;
		for (int p = 0, n = 1 + int(rng() % 6); p < n; ++p) {
			mapping::Path path;
			for (int d = 0, depth = 1 + int(rng() % 3); d < depth; ++d)
				path.push_back(kKeys[rng() % 10]);
			std::size_t k = std::find(keys.begin(), keys.end(), path[0]) - keys.begin();
			if (k == keys.size())
				keys.push_back(path[0]);
			paths.push_back(path);
			top.push_back(k);
		}
		TopKeys located(keys);
		mongo::Bson doc = RandomKeyedDoc(rng);
		uint32_t offsets[TopKeys::kMaxKeys] = {};
		ASSERT_TRUE(located.Locate(*doc, offsets));
		for (std::size_t p = 0; p < paths.size(); ++p) {
			bson_iter_t want, got;
			const bool want_found = FindPath(*doc, paths[p], &want);
			const bool got_found = located.FindPath(*doc, top[p], offsets[top[p]], paths[p], &got);
			ASSERT_EQ(want_found, got_found) << round << " " << mapping::PathText(paths[p]);
			if (!want_found)
				continue;
			++found;
			ASSERT_EQ(bson_iter_type(&want), bson_iter_type(&got));
			ASSERT_EQ(want.raw + want.off, got.raw + got.off) << round << " " << mapping::PathText(paths[p]);
		}
	}
	EXPECT_GT(found, 1000); // the property was tested on paths that exist, not only on misses
	std::vector<std::string> many;
	for (std::size_t i = 0; i <= TopKeys::kMaxKeys; ++i)
		many.push_back("k" + std::to_string(i));
	uint32_t offsets[TopKeys::kMaxKeys];
	EXPECT_FALSE(TopKeys(many).Locate(*Doc(R"({"k1": 1})"), offsets)); // too many: FindPath serves
}

} // namespace
} // namespace mongo_river::convert

// IsCleanText's ASCII words agree with bson_utf8_validate (no NUL) on random strings: mostly ASCII,
// with NULs, high bytes, valid and broken multi-byte sequences at every offset of a word.
TEST(CleanText, AgreesWithLibbson) {
	std::mt19937 rng(7);
	const std::vector<std::string> pieces = {"a",
											 "Z",
											 "~",
											 std::string(1, '\0'),
											 "\x7f",
											 "\x80",
											 "\xc3\xa9",
											 "\xe2\x82\xac",
											 "\xf0\x9f\x98\x80",
											 "\xc3",
											 "\xed\xa0\x80",
											 "\xff"};
	int unclean = 0;
	for (int n = 0; n < 20000; n++) {
		std::string s;
		const int length = int(rng() % 40);
		for (int i = 0; i < length; i++)
			s += rng() % 4 ? std::string(1, char('a' + rng() % 26)) : pieces[rng() % pieces.size()];
		const bool want = bson_utf8_validate(s.data(), s.size(), false);
		unclean += !want;
		ASSERT_EQ(mongo_river::convert::internal::IsCleanText(s.data(), s.size()), want) << n;
	}
	EXPECT_GT(unclean, 3000);
	EXPECT_LT(unclean, 17000);
}
