// types.hpp: what a PostgreSQL type name means for conversion from BSON (PG-free).
#pragma once

#include <string>
#include <string_view>

namespace mongo_river::convert {

// TargetKind is the family a column type belongs to; kOther means "via the type's text input
// function": the converter produces text and the SQL layer feeds it to the type's input function.
enum class TargetKind {
	kText,
	kSmallint,
	kInteger,
	kBigint,
	kReal,
	kDouble,
	kNumeric,
	kBoolean,
	kTimestamptz,
	kTimestamp,
	kDate,
	kUuid,
	kBytea,
	kJsonb,
	kJson,
	kOther,
};

// TargetType is a classified column type: its family, whether it is a one-dimensional array of that
// family, the normalised base name ("character varying", "numeric") and its type modifier as written
// ("(10,2)", or empty), e.g. "NUMERIC( 10, 2 )[]" -> {kNumeric, array, "numeric", "(10,2)"}.
struct TargetType {
	TargetKind kind = TargetKind::kOther;
	bool array = false;
	std::string base;
	std::string modifier;
	// name caches Name() (ClassifyType fills it) so conversions do not rebuild it per value.
	std::string name;

	// Name is the normalised type name, e.g. "numeric(10,2)[]".
	std::string Name() const { return name.empty() ? BuildName() : name; }
	// BuildName assembles the normalised name from base, modifier and array.
	std::string BuildName() const;
};

// ClassifyType classifies a PostgreSQL type name, case-insensitively and tolerant of spacing:
// text/varchar/char(n)/character varying(n)/bpchar -> kText; smallint/int2; integer/int/int4;
// bigint/int8; real/float4; double precision/float8/float; numeric/decimal(p,s); boolean/bool;
// timestamptz/timestamp[(p)] with time zone; timestamp[(p)] [without time zone]; date; uuid; bytea;
// jsonb; json; any of those followed by [] (or [n], or ARRAY) -> array; a "pg_catalog." prefix is
// ignored; everything else (including multi-dimensional arrays) -> kOther.
TargetType ClassifyType(std::string_view pg_type_name);

// KindName names a kind in messages: "integer", "timestamp with time zone", ...
std::string KindName(TargetKind kind);

// IsPlausibleTypeName tells whether name has the shape of a PostgreSQL type name (words, optional
// schema qualification, optional modifier in parentheses, optional array brackets); the SQL layer
// still checks that the type exists. It keeps obvious junk ("int; drop table t") out of mappings.
bool IsPlausibleTypeName(std::string_view name);

} // namespace mongo_river::convert
