// convert.hpp: BSON values -> checked, typed Values for a column type; path lookup; `_id` text (PG-free).
//
// Conversions by source BSON type (rows) and column type family; "-" is a ConversionError 42804:
//   string      text/other: itself; uuid: parsed (8-4-4-4-12 or 32 hex digits); integers: only an exact
//               decimal integer in range; numeric/real/double: strict decimal syntax (NaN, Infinity);
//               boolean: "true"/"false"; timestamp(tz)/date: via the type's input function; bytea:
//               its UTF-8 bytes; jsonb/json: a JSON string.
//   objectId    text: 24 hex digits; bytea: 12 bytes; jsonb: {"$oid": ...}.
//   int32/int64 integers: range-checked (an error, never a wrap); real/double: only when exact;
//               numeric, text: decimal; jsonb: number.
//   double      real/double: itself (NaN/Infinity kept); integers: only integral and in range;
//               numeric: shortest exact decimal, NaN/Infinity kept; text: shortest round-trip digits.
//   decimal128  numeric/text: exact via its string (NaN, Infinity kept); integers: only integral and
//               in range; real/double: nearest double; jsonb: {"$numberDecimal": ...}.
//   bool        boolean; text: true/false; jsonb.
//   date        timestamptz; timestamp: UTC wall-clock time; date: the UTC day (time of day dropped);
//               text: ISO 8601 UTC "1970-01-01T00:00:00.000Z"; jsonb: relaxed {"$date": ...}. Outside
//               PostgreSQL's range (before 4714-11-24 BC, or overflowing microseconds) -> 22008.
//   binary      uuid: subtype 4, or subtype 3 with 16 bytes (its bytes as they are); bytea: any;
//               text: a uuid's 8-4-4-4-12 form, other subtypes their Extended JSON.
//   document/array  jsonb/json/text: relaxed Extended JSON (keys in document order); arrays ->
//               PostgreSQL arrays element by element (documents or arrays inside -> 42804 unless the
//               element type is jsonb/json).
//   timestamp   timestamptz/timestamp/date: its seconds; bigint: (t << 32) | i; jsonb/text: Extended JSON.
//   regex, javascript, javascriptWithScope, symbol, dbPointer, minKey, maxKey
//               jsonb/json/text: their relaxed Extended JSON (text of a symbol or code: the string itself).
//   null, undefined  NULL for every type (inside documents they stay JSON null / {"$undefined": true}).
// Other column types (kOther) receive the text form above as Input for their input function.
// Strings with a NUL character or invalid UTF-8 -> 22021 (text and jsonb cannot hold them; the caller
// keeps the raw BSON in rejects).
#pragma once

#include <string>

#include <bson/bson.h>

#include "mongo_river/convert/types.hpp"
#include "mongo_river/convert/value.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace mongo_river::convert {

// BsonTypeName names a BSON type as MongoDB's $type aliases do, with int32/int64/decimal128 spelt
// out: "string", "int64", "objectId", "document", ...
std::string BsonTypeName(bson_type_t type);

// ConvertValue converts one BSON value to target, checking everything that can be checked without
// PostgreSQL; path names the value in errors. Throws ConversionError.
Value ConvertValue(const bson_value_t &value, const TargetType &target, const std::string &path);

// ConvertExtendedJson converts a value to its canonical Extended JSON (format "extjson"), as Text
// for a text-like target or JsonText for json/jsonb. Throws ConversionError.
Value ConvertExtendedJson(const bson_value_t &value, const TargetType &target, const std::string &path);

// ExtendedJson renders one value (scalar, document or array) as Extended JSON text, canonical or
// relaxed; strings holding NUL or invalid UTF-8 throw ConversionError 22021.
std::string ExtendedJson(const bson_value_t &value, bool canonical, const std::string &path);

// DocumentJson renders a whole document as relaxed Extended JSON (the "document" column).
std::string DocumentJson(const bson_t &document);

// FindPath positions iter on the value at path (numeric keys index arrays); false when any key is
// missing or an intermediate value is neither a document nor an array.
bool FindPath(const bson_t &document, const mapping::Path &path, bson_iter_t *iter);

// TopKeys finds the first element of each of a set of keys in one pass over a document (a row's
// columns share that pass instead of one search each). Locate returns false when the set is too
// large for it; then FindPath serves.
class TopKeys {
public:
	static constexpr std::size_t kMaxKeys = 64;
	explicit TopKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}
	// Locate fills offsets[k] with the offset of the first element named keys[k] in document, or 0.
	bool Locate(const bson_t &document, uint32_t offsets[kMaxKeys]) const;
	// FindPath is convert::FindPath for a path whose first key is keys[k], located at offset.
	bool FindPath(const bson_t &document, std::size_t k, uint32_t offset, const mapping::Path &path,
				  bson_iter_t *iter) const;

private:
	std::vector<std::string> keys_;
};

// DocumentIdText is the `_id` as text for messages, rejects and verify: a string as itself, anything
// else as canonical Extended JSON (NUL or invalid UTF-8 are escaped, so it never fails).
std::string DocumentIdText(const bson_value_t &id);
// DocumentIdText of a document's (or a document key's) _id; empty when it has none (or doc is null).
std::string DocumentIdText(const bson_t *doc);

// ConvertPrimaryKey converts the pk column's value and enforces injectivity: with a text-like type
// and no format, only strings (as themselves) and ObjectIds (as 24 hex digits) are accepted; other
// BSON types throw ConversionError 22023 asking for "format": "extjson". A missing or null value
// throws 23502.
Value ConvertPrimaryKey(const bson_value_t *value, const mapping::Column &pk, const TargetType &target,
						const std::string &path);

// DefaultTypeName is the §3 default column type for a BSON value: "text" for strings and ObjectIds,
// "integer", "bigint", "double precision", "numeric", "boolean", "timestamptz", "uuid", "bytea",
// "jsonb" (documents, arrays and the rest); empty for null/undefined.
std::string DefaultTypeName(const bson_value_t &value);

} // namespace mongo_river::convert
