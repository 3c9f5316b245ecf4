// types_test.cpp: ClassifyType and IsPlausibleTypeName.
#include <gtest/gtest.h>

#include "mongo_river/convert/types.hpp"

namespace mongo_river::convert {
namespace {

TEST(ClassifyType, BuiltinNamesAndAliases) {
	struct Case {
		const char *name;
		TargetKind kind;
	} cases[] = {
		{"text", TargetKind::kText},
		{"VARCHAR(10)", TargetKind::kText},
		{"character varying", TargetKind::kText},
		{"char(3)", TargetKind::kText},
		{"smallint", TargetKind::kSmallint},
		{"int2", TargetKind::kSmallint},
		{"integer", TargetKind::kInteger},
		{"INT", TargetKind::kInteger},
		{"int4", TargetKind::kInteger},
		{"bigint", TargetKind::kBigint},
		{"int8", TargetKind::kBigint},
		{"real", TargetKind::kReal},
		{"float4", TargetKind::kReal},
		{"double precision", TargetKind::kDouble},
		{"float8", TargetKind::kDouble},
		{"numeric", TargetKind::kNumeric},
		{"decimal(10,2)", TargetKind::kNumeric},
		{"boolean", TargetKind::kBoolean},
		{"bool", TargetKind::kBoolean},
		{"timestamptz", TargetKind::kTimestamptz},
		{"timestamp with time zone", TargetKind::kTimestamptz},
		{"timestamp", TargetKind::kTimestamp},
		{"timestamp without time zone", TargetKind::kTimestamp},
		{"date", TargetKind::kDate},
		{"uuid", TargetKind::kUuid},
		{"bytea", TargetKind::kBytea},
		{"jsonb", TargetKind::kJsonb},
		{"json", TargetKind::kJson},
		{"pg_catalog.int8", TargetKind::kBigint},
		{"citext", TargetKind::kOther},
		{"inet", TargetKind::kOther},
		{"public.my_type", TargetKind::kOther},
	};
	for (const Case &c : cases) {
		TargetType type = ClassifyType(c.name);
		EXPECT_EQ(type.kind, c.kind) << c.name;
		EXPECT_FALSE(type.array) << c.name;
	}
}

TEST(ClassifyType, CaseWhitespaceModifiersArrays) {
	TargetType t = ClassifyType("  NUMERIC( 10 , 2 ) [] ");
	EXPECT_EQ(t.kind, TargetKind::kNumeric);
	EXPECT_TRUE(t.array);
	EXPECT_EQ(t.modifier, "(10,2)");
	EXPECT_EQ(t.Name(), "numeric(10,2)[]");

	t = ClassifyType("Timestamp(3)   WITH time  zone");
	EXPECT_EQ(t.kind, TargetKind::kTimestamptz);
	EXPECT_EQ(t.modifier, "(3)");
	EXPECT_EQ(t.Name(), "timestamp(3) with time zone");

	t = ClassifyType("text[]");
	EXPECT_EQ(t.kind, TargetKind::kText);
	EXPECT_TRUE(t.array);
	t = ClassifyType("integer[3]");
	EXPECT_EQ(t.kind, TargetKind::kInteger);
	EXPECT_TRUE(t.array);
	t = ClassifyType("bigint ARRAY");
	EXPECT_EQ(t.kind, TargetKind::kBigint);
	EXPECT_TRUE(t.array);
	t = ClassifyType("citext[]");
	EXPECT_EQ(t.kind, TargetKind::kOther);
	EXPECT_TRUE(t.array);
	EXPECT_EQ(t.base, "citext");
	t = ClassifyType("int[][]");
	EXPECT_EQ(t.kind, TargetKind::kOther) << "multi-dimensional arrays go through the input function";
	EXPECT_FALSE(t.array);
}

TEST(IsPlausibleTypeName, AcceptsTypeShapes) {
	for (const char *name : {"text", "double precision", "numeric(10,2)", "timestamp(3) with time zone", "text[]",
							 "int[][]", "public.my_type", "\"My Type\"", "character varying(20)[]", "bigint array"})
		EXPECT_TRUE(IsPlausibleTypeName(name)) << name;
}

TEST(IsPlausibleTypeName, RefusesJunk) {
	for (const char *name :
		 {"", " ", "int; drop table t", "text)", "numeric(10", "1abc", "text[x]", "a(b)", "text --", "\"\"", "int'"})
		EXPECT_FALSE(IsPlausibleTypeName(name)) << name;
}

} // namespace
} // namespace mongo_river::convert
