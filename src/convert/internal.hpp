// internal.hpp: helpers shared by the src/convert/ files (not part of the public API).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <bson/bson.h>

#include "mongo_river/convert/types.hpp"
#include "mongo_river/convert/value.hpp"

namespace mongo_river::convert::internal {

inline constexpr const char *kDatetimeOverflow = "22008";
inline constexpr const char *kNotNullViolation = "23502";
// kMinMicros is 4714-11-24 00:00:00 UTC BC (Julian day 0), PostgreSQL's earliest timestamp.
inline constexpr std::int64_t kMinMicros = -210866803200000000LL;
inline constexpr std::int64_t kMicrosPerDay = 86400000000LL;

// Fail throws the ConversionError `cannot convert <type> <preview> at "<path>" to <target>: <reason>`.
[[noreturn]] void Fail(const char *sqlstate, const bson_value_t &value, const std::string &path,
					   const std::string &target, const std::string &reason, const std::string &hint = {});

// IsCleanText tells whether s is valid UTF-8 without NUL characters (bson_utf8_validate without
// NUL, faster on ASCII).
bool IsCleanText(const char *s, std::size_t len);

// CheckText throws 22021 when s holds a NUL character or invalid UTF-8.
void CheckText(const char *s, std::size_t len, const bson_value_t &value, const std::string &path,
			   const std::string &target);

// CheckStrings applies CheckText to every string and key inside value (documents recursively), and
// throws 22P02 for malformed BSON, before anything is rendered as JSON or text.
void CheckStrings(const bson_value_t &value, const std::string &path, const std::string &target);

// RenderJson renders value as Extended JSON after CheckStrings; errors name target (e.g. "jsonb").
std::string RenderJson(const bson_value_t &value, bool canonical, const std::string &path, const std::string &target);

// FormatDouble renders a double like PostgreSQL's float8out: shortest round-trip digits, NaN,
// Infinity, -Infinity.
std::string FormatDouble(double d);

// FormatTimestamp renders microseconds since the Unix epoch in UTC: ISO 8601 ("1970-01-01T00:00:00.000Z",
// milliseconds) when iso, else PostgreSQL's style ("1970-01-01 00:00:00+00", fraction only when
// non-zero, " BC" for years before 1).
std::string FormatTimestamp(std::int64_t micros, bool iso, bool with_time_zone = true);

// FormatDate renders days since the Unix epoch as PostgreSQL does ("2024-02-29", " BC" before year 1).
std::string FormatDate(std::int64_t days);

// FormatUuid renders 16 bytes as 8-4-4-4-12 lowercase hex.
std::string FormatUuid(const std::uint8_t *bytes);

// FloorDiv divides rounding towards negative infinity (dates before 1970).
std::int64_t FloorDiv(std::int64_t a, std::int64_t b);

// CivilFromDays turns days since 1970-01-01 into a proleptic Gregorian year, month and day.
void CivilFromDays(std::int64_t days, std::int64_t *year, int *month, int *day);

// Decimal is a parsed decimal number: value = (negative ? -1 : 1) * digits * 10^exponent, digits
// without leading zeros (empty for zero), or a special value.
struct Decimal {
	bool negative = false;
	std::string digits;
	std::int64_t exponent = 0;
	bool nan = false;
	bool infinite = false;
};

// ParseDecimal parses [+-]digits[.digits][(e|E)[+-]digits], NaN or [+-]Infinity (any case), the
// syntax numeric's input accepts, with no surrounding space; false when s is not such a number.
bool ParseDecimal(std::string_view s, Decimal *out);

enum class IntegerStatus { kOk, kFractional, kOutOfRange, kNotFinite };

// DecimalToInt64 converts an integral decimal within int64's range.
IntegerStatus DecimalToInt64(const Decimal &decimal, std::int64_t *out);

// ParseUuid parses 8-4-4-4-12 or 32 hex digits (any case, optional braces); false otherwise.
bool ParseUuid(std::string_view s, std::uint8_t *bytes);

// AssignText is ConvertValue of a string or an ObjectId to a text column (not an array) into *out,
// reusing the string *out holds when it holds text (a copy converts each batch into the last
// batch's storage): false, *out untouched, for any other value or target. Throws as ConvertValue.
bool AssignText(const bson_value_t &value, const TargetType &target, const std::string &path, Value *out);

} // namespace mongo_river::convert::internal
