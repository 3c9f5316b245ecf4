// value.hpp: the checked, typed, PG-free value a BSON value converts to, and ConversionError.
//
// The apply layer turns a Value into a Datum of the column's type; every check that does not need
// PostgreSQL (ranges, integrality, UTF-8, NUL characters, UUID shape) has already been made.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "mongo_river/error.hpp"

namespace mongo_river::convert {

// kCharacterNotInRepertoire is PostgreSQL's SQLSTATE for invalid UTF-8 and NUL characters in text.
inline constexpr const char *kCharacterNotInRepertoire = "22021";

struct Value;

// Int is an integer already range-checked for its column: bytes is 2 (smallint), 4 (integer) or 8.
struct Int {
	std::int64_t value = 0;
	int bytes = 8;
};

// Float is a double precision (bytes 8) or a real (bytes 4, range-checked); NaN and infinities kept.
struct Float {
	double value = 0;
	int bytes = 8;
};

// Numeric is an exact decimal in numeric's input syntax ("-12.5", "1.5E+3", "NaN", "Infinity").
struct Numeric {
	std::string text;
};

// Text is valid UTF-8 without NUL characters.
struct Text {
	std::string value;
};

// Input is text for the column type's own input function (kOther types, string -> date, ...);
// valid UTF-8 without NUL characters.
struct Input {
	std::string text;
};

// Timestamp is microseconds since 1970-01-01 00:00:00 UTC, within PostgreSQL's timestamp range;
// with_time_zone tells timestamptz (true) from timestamp (UTC wall-clock time).
struct Timestamp {
	std::int64_t micros = 0;
	bool with_time_zone = true;
};

// Date is days since 1970-01-01.
struct Date {
	std::int32_t days = 0;
};

struct Uuid {
	std::array<std::uint8_t, 16> bytes{};
};

struct Bytes {
	std::string data;
};

// JsonText is JSON text (relaxed Extended JSON for BSON documents), valid UTF-8 without NUL; binary
// tells jsonb from json.
struct JsonText {
	std::string text;
	bool binary = true;
};

// Array is a one-dimensional PostgreSQL array; elements are Null or of the element type.
struct Array {
	std::vector<Value> elements;
};

using ValueVariant =
	std::variant<std::monostate, bool, Int, Float, Numeric, Text, Input, Timestamp, Date, Uuid, Bytes, JsonText, Array>;

// Value is SQL NULL (std::monostate) or one typed value.
struct Value {
	ValueVariant v;

	bool IsNull() const { return std::holds_alternative<std::monostate>(v); }
};

bool operator==(const Value &a, const Value &b);

// ValueText renders a value as PostgreSQL's text output would (int -> "12", uuid -> 8-4-4-4-12,
// timestamp -> ISO 8601 UTC, bytea -> "\x..."); used for generated child ids and messages.
std::string ValueText(const Value &value);

// AppendCopyField appends value as one field of COPY's text format: \N for NULL, else ValueText
// (what the column type's input function reads) with backslash, newline, carriage return and tab
// escaped. The rows of a COPY ... FROM are these fields joined by tabs, each row ending in a newline.
void AppendCopyField(const Value &value, std::string *out);

// ConversionError is a value that cannot be converted: it carries the path and the BSON type name
// so that rejects can say where and what, e.g. `cannot convert int64 9999999999 at "stats.count" to
// integer: out of range` (SQLSTATE 22003).
class ConversionError : public Error {
public:
	ConversionError(std::string sqlstate, std::string message, std::string path, std::string bson_type,
					std::string detail = {}, std::string hint = {})
		: Error(std::move(sqlstate), std::move(message), std::move(detail), std::move(hint)), path_(std::move(path)),
		  bson_type_(std::move(bson_type)) {}

	const std::string &Path() const { return path_; }
	const std::string &BsonType() const { return bson_type_; }

private:
	std::string path_;
	std::string bson_type_;
};

} // namespace mongo_river::convert
