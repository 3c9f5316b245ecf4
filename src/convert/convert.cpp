// convert.cpp: BSON value -> Value for one column type (the matrix is documented in convert.hpp).
#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "internal.hpp"
#include "mongo_river/convert/convert.hpp"

namespace mongo_river::convert {

namespace {

using internal::Fail;

const char *const kMismatchHint =
	"Change the column's type (jsonb or text accept every BSON value) or fix the source data.";

// Mismatch throws 42804 for a BSON type the target has no conversion from.
[[noreturn]] void Mismatch(const bson_value_t &value, const std::string &path, const std::string &target) {
	Fail(sqlstate::kDatatypeMismatch, value, path, target, "no conversion from " + BsonTypeName(value.value_type),
		 kMismatchHint);
}

// StringOf returns a UTF-8 value's bytes.
std::string_view StringOf(const bson_value_t &value) {
	return std::string_view(value.value.v_utf8.str, value.value.v_utf8.len);
}

// DecimalString renders a Decimal128 exactly, as libbson does ("1.5E+3", "NaN", "-Infinity").
std::string DecimalString(const bson_value_t &value) {
	char buffer[BSON_DECIMAL128_STRING];
	bson_decimal128_to_string(&value.value.v_decimal128, buffer);
	return buffer;
}

// IsUuidBinary tells whether a binary value is a UUID: subtype 4, or subtype 3 (legacy), 16 bytes.
bool IsUuidBinary(const bson_value_t &value) {
	return value.value_type == BSON_TYPE_BINARY &&
		   (value.value.v_binary.subtype == BSON_SUBTYPE_UUID ||
			value.value.v_binary.subtype == BSON_SUBTYPE_UUID_DEPRECATED) &&
		   value.value.v_binary.data_len == 16;
}

// DateMicros range-checks a BSON date (milliseconds) and returns microseconds since the epoch.
std::int64_t DateMicros(const bson_value_t &value, const std::string &path, const std::string &target) {
	std::int64_t ms = value.value.v_datetime;
	if (ms < internal::kMinMicros / 1000)
		Fail(internal::kDatetimeOverflow, value, path, target, "before 4714-11-24 BC, PostgreSQL's first day");
	if (ms > INT64_MAX / 1000)
		Fail(internal::kDatetimeOverflow, value, path, target, "after PostgreSQL's last timestamp");
	return ms * 1000;
}

// StringOrIdText is the text of a string (checked as text, CheckText) or of an ObjectId (24 hex
// digits, written into hex): what TextForm gives them, without a copy. Other types: nullopt.
std::optional<std::string_view> StringOrIdText(const bson_value_t &value, const std::string &path,
											   const std::string &target, char hex[25]) {
	if (value.value_type == BSON_TYPE_UTF8) {
		internal::CheckText(value.value.v_utf8.str, value.value.v_utf8.len, value, path, target);
		return StringOf(value);
	}
	if (value.value_type == BSON_TYPE_OID) {
		bson_oid_to_string(&value.value.v_oid, hex);
		return std::string_view(hex, 24);
	}
	return std::nullopt;
}

// TextForm is a value's text: strings as themselves, ObjectIds as hex, numbers in decimal, dates in
// ISO 8601 UTC, UUIDs 8-4-4-4-12, everything else as relaxed Extended JSON.
std::string TextForm(const bson_value_t &value, const std::string &path, const std::string &target) {
	const auto &v = value.value;
	char buffer[32];
	if (std::optional<std::string_view> text = StringOrIdText(value, path, target, buffer))
		return std::string(*text);
	switch (value.value_type) {
	case BSON_TYPE_SYMBOL:
		internal::CheckText(v.v_symbol.symbol, v.v_symbol.len, value, path, target);
		return std::string(v.v_symbol.symbol, v.v_symbol.len);
	case BSON_TYPE_CODE:
		internal::CheckText(v.v_code.code, v.v_code.code_len, value, path, target);
		return std::string(v.v_code.code, v.v_code.code_len);
	case BSON_TYPE_INT32:
		return std::to_string(v.v_int32);
	case BSON_TYPE_INT64:
		return std::to_string(v.v_int64);
	case BSON_TYPE_DOUBLE:
		return internal::FormatDouble(v.v_double);
	case BSON_TYPE_DECIMAL128:
		return DecimalString(value);
	case BSON_TYPE_BOOL:
		return v.v_bool ? "true" : "false";
	case BSON_TYPE_DATE_TIME:
		if (v.v_datetime >= internal::kMinMicros / 1000 && v.v_datetime <= INT64_MAX / 1000)
			return internal::FormatTimestamp(v.v_datetime * 1000, true);
		break;
	case BSON_TYPE_BINARY:
		if (IsUuidBinary(value))
			return internal::FormatUuid(v.v_binary.data);
		break;
	default:
		break;
	}
	return internal::RenderJson(value, false, path, target);
}

// RangeCheck throws 22003 unless n fits in an integer of bytes bytes.
std::int64_t RangeCheck(std::int64_t n, int bytes, const bson_value_t &value, const std::string &path,
						const std::string &target) {
	std::int64_t low = bytes == 2 ? INT16_MIN : bytes == 4 ? INT32_MIN : INT64_MIN;
	std::int64_t high = bytes == 2 ? INT16_MAX : bytes == 4 ? INT32_MAX : INT64_MAX;
	if (n < low || n > high)
		Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "out of range");
	return n;
}

// DecimalInteger converts decimal text (Decimal128 or string) to an integer, exactly or not at all.
std::int64_t DecimalInteger(std::string_view text, const bson_value_t &value, const std::string &path,
							const std::string &target) {
	internal::Decimal decimal;
	if (!internal::ParseDecimal(text, &decimal))
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "not a number");
	std::int64_t n = 0;
	switch (internal::DecimalToInt64(decimal, &n)) {
	case internal::IntegerStatus::kOk:
		return n;
	case internal::IntegerStatus::kFractional:
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "has a fractional part");
	case internal::IntegerStatus::kOutOfRange:
		Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "out of range");
	case internal::IntegerStatus::kNotFinite:
		break;
	}
	Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "NaN and infinities have no integer form");
}

// ToInteger converts to smallint/integer/bigint (bytes 2/4/8): never a wrap, never a rounding.
Value ToInteger(const bson_value_t &value, int bytes, const std::string &path, const std::string &target) {
	const auto &v = value.value;
	std::int64_t n = 0;
	switch (value.value_type) {
	case BSON_TYPE_INT32:
		n = v.v_int32;
		break;
	case BSON_TYPE_INT64:
		n = v.v_int64;
		break;
	case BSON_TYPE_DOUBLE: {
		double d = v.v_double;
		if (!std::isfinite(d))
			Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "NaN and infinities have no integer form");
		if (std::trunc(d) != d)
			Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "has a fractional part");
		if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
			Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "out of range");
		n = static_cast<std::int64_t>(d);
		break;
	}
	case BSON_TYPE_DECIMAL128:
		n = DecimalInteger(DecimalString(value), value, path, target);
		break;
	case BSON_TYPE_UTF8: {
		std::string_view s = StringOf(value);
		std::size_t digits_at = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
		if (s.size() == digits_at || s.find_first_not_of("0123456789", digits_at) != std::string_view::npos)
			Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "not an integer in decimal digits");
		n = DecimalInteger(s, value, path, target);
		break;
	}
	case BSON_TYPE_TIMESTAMP:
		if (bytes != 8)
			Mismatch(value, path, target);
		n = static_cast<std::int64_t>((static_cast<std::uint64_t>(v.v_timestamp.timestamp) << 32) |
									  v.v_timestamp.increment);
		break;
	default:
		Mismatch(value, path, target);
	}
	return Value{Int{RangeCheck(n, bytes, value, path, target), bytes}};
}

// ParseDouble converts decimal text to a double; overflow and underflow of a non-zero value throw.
double ParseDouble(std::string_view text, const bson_value_t &value, const std::string &path,
				   const std::string &target) {
	internal::Decimal decimal;
	if (!internal::ParseDecimal(text, &decimal))
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "not a number");
	if (decimal.nan)
		return NAN;
	if (decimal.infinite)
		return decimal.negative ? -INFINITY : INFINITY;
	std::string copy(text);
	errno = 0;
	double d = std::strtod(copy.c_str(), nullptr);
	if (std::isinf(d) || (errno == ERANGE && d == 0 && !decimal.digits.empty()))
		Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "out of range for double precision");
	return d;
}

// ToFloat converts to real (bytes 4) or double precision (bytes 8); integers only when exact.
Value ToFloat(const bson_value_t &value, int bytes, const std::string &path, const std::string &target) {
	const auto &v = value.value;
	double d = 0;
	switch (value.value_type) {
	case BSON_TYPE_DOUBLE:
		d = v.v_double;
		break;
	case BSON_TYPE_INT32:
	case BSON_TYPE_INT64: {
		std::int64_t n = value.value_type == BSON_TYPE_INT32 ? v.v_int32 : v.v_int64;
		d = static_cast<double>(n);
		bool exact = d < 9223372036854775808.0 && static_cast<std::int64_t>(d) == n;
		if (bytes == 4)
			exact = exact && static_cast<double>(static_cast<float>(d)) == d;
		if (!exact)
			Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "cannot be represented exactly",
				 "Use bigint or numeric for large integers.");
		break;
	}
	case BSON_TYPE_DECIMAL128:
		d = ParseDouble(DecimalString(value), value, path, target);
		break;
	case BSON_TYPE_UTF8:
		d = ParseDouble(StringOf(value), value, path, target);
		break;
	default:
		Mismatch(value, path, target);
	}
	if (bytes == 4 && std::isfinite(d) && (std::fabs(d) > FLT_MAX || (d != 0 && static_cast<float>(d) == 0)))
		Fail(sqlstate::kNumericValueOutOfRange, value, path, target, "out of range for real");
	return Value{Float{d, bytes}};
}

// ToNumeric converts to numeric exactly (doubles via their shortest round-trip digits).
Value ToNumeric(const bson_value_t &value, const std::string &path, const std::string &target) {
	const auto &v = value.value;
	switch (value.value_type) {
	case BSON_TYPE_INT32:
		return Value{Numeric{std::to_string(v.v_int32)}};
	case BSON_TYPE_INT64:
		return Value{Numeric{std::to_string(v.v_int64)}};
	case BSON_TYPE_DOUBLE:
		return Value{Numeric{internal::FormatDouble(v.v_double)}};
	case BSON_TYPE_DECIMAL128:
		return Value{Numeric{DecimalString(value)}};
	case BSON_TYPE_UTF8: {
		internal::Decimal decimal;
		if (!internal::ParseDecimal(StringOf(value), &decimal))
			Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "not a decimal number");
		return Value{Numeric{std::string(StringOf(value))}};
	}
	default:
		Mismatch(value, path, target);
	}
}

// ToBoolean accepts BSON booleans and the strings "true"/"false" (any case).
Value ToBoolean(const bson_value_t &value, const std::string &path, const std::string &target) {
	if (value.value_type == BSON_TYPE_BOOL)
		return Value{value.value.v_bool};
	if (value.value_type != BSON_TYPE_UTF8)
		Mismatch(value, path, target);
	std::string s(StringOf(value));
	for (char &c : s)
		c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
	if (s == "true" || s == "false")
		return Value{s == "true"};
	Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "only \"true\" and \"false\" are booleans");
}

// ToTimestamp converts BSON dates and timestamps; strings go to the type's input function.
Value ToTimestamp(const bson_value_t &value, bool with_time_zone, const std::string &path, const std::string &target) {
	switch (value.value_type) {
	case BSON_TYPE_DATE_TIME:
		return Value{Timestamp{DateMicros(value, path, target), with_time_zone}};
	case BSON_TYPE_TIMESTAMP:
		return Value{Timestamp{static_cast<std::int64_t>(value.value.v_timestamp.timestamp) * 1000000, with_time_zone}};
	case BSON_TYPE_UTF8:
		return Value{Input{TextForm(value, path, target)}};
	default:
		Mismatch(value, path, target);
	}
}

// ToDate converts BSON dates (the UTC day) and timestamps; strings go to date's input function.
Value ToDate(const bson_value_t &value, const std::string &path, const std::string &target) {
	switch (value.value_type) {
	case BSON_TYPE_DATE_TIME:
		return Value{Date{
			static_cast<std::int32_t>(internal::FloorDiv(DateMicros(value, path, target), internal::kMicrosPerDay))}};
	case BSON_TYPE_TIMESTAMP:
		return Value{Date{static_cast<std::int32_t>(value.value.v_timestamp.timestamp / 86400)}};
	case BSON_TYPE_UTF8:
		return Value{Input{TextForm(value, path, target)}};
	default:
		Mismatch(value, path, target);
	}
}

// ToUuid converts UUID binaries (subtype 4, or 3 taken as its 16 bytes) and UUID strings.
Value ToUuid(const bson_value_t &value, const std::string &path, const std::string &target) {
	Uuid uuid;
	if (value.value_type == BSON_TYPE_BINARY) {
		if (!IsUuidBinary(value))
			Fail(sqlstate::kDatatypeMismatch, value, path, target,
				 "binary subtype " + std::to_string(value.value.v_binary.subtype) + " of " +
					 std::to_string(value.value.v_binary.data_len) + " bytes is not a UUID",
				 "Only subtype 4 (and legacy subtype 3) 16-byte binaries are UUIDs; use bytea for others.");
		std::memcpy(uuid.bytes.data(), value.value.v_binary.data, 16);
		return Value{uuid};
	}
	if (value.value_type != BSON_TYPE_UTF8)
		Mismatch(value, path, target);
	if (!internal::ParseUuid(StringOf(value), uuid.bytes.data()))
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "not a UUID");
	return Value{uuid};
}

// ToBytes converts binaries (any subtype), strings (their UTF-8 bytes) and ObjectIds (12 bytes).
Value ToBytes(const bson_value_t &value, const std::string &path, const std::string &target) {
	const auto &v = value.value;
	switch (value.value_type) {
	case BSON_TYPE_BINARY:
		return Value{Bytes{std::string(reinterpret_cast<const char *>(v.v_binary.data), v.v_binary.data_len)}};
	case BSON_TYPE_UTF8:
		return Value{Bytes{std::string(StringOf(value))}};
	case BSON_TYPE_OID:
		return Value{Bytes{std::string(reinterpret_cast<const char *>(v.v_oid.bytes), 12)}};
	default:
		Mismatch(value, path, target);
	}
}

// ConvertScalar converts to one non-array target.
Value ConvertScalar(const bson_value_t &value, const TargetType &target, const std::string &path) {
	std::string built;
	const std::string &name = target.name.empty() ? (built = target.BuildName()) : target.name;
	switch (target.kind) {
	case TargetKind::kText:
		return Value{Text{TextForm(value, path, name)}};
	case TargetKind::kOther:
		return Value{Input{TextForm(value, path, name)}};
	case TargetKind::kSmallint:
		return ToInteger(value, 2, path, name);
	case TargetKind::kInteger:
		return ToInteger(value, 4, path, name);
	case TargetKind::kBigint:
		return ToInteger(value, 8, path, name);
	case TargetKind::kReal:
		return ToFloat(value, 4, path, name);
	case TargetKind::kDouble:
		return ToFloat(value, 8, path, name);
	case TargetKind::kNumeric:
		return ToNumeric(value, path, name);
	case TargetKind::kBoolean:
		return ToBoolean(value, path, name);
	case TargetKind::kTimestamptz:
		return ToTimestamp(value, true, path, name);
	case TargetKind::kTimestamp:
		return ToTimestamp(value, false, path, name);
	case TargetKind::kDate:
		return ToDate(value, path, name);
	case TargetKind::kUuid:
		return ToUuid(value, path, name);
	case TargetKind::kBytea:
		return ToBytes(value, path, name);
	case TargetKind::kJsonb:
	case TargetKind::kJson:
		return Value{JsonText{internal::RenderJson(value, false, path, name), target.kind == TargetKind::kJsonb}};
	}
	Mismatch(value, path, name);
}

// ConvertArray converts a BSON array element by element into a one-dimensional array.
Value ConvertArray(const bson_value_t &value, const TargetType &target, const std::string &path) {
	if (value.value_type != BSON_TYPE_ARRAY)
		Fail(sqlstate::kDatatypeMismatch, value, path, target.Name(), "expected an array",
			 "Use the element type without [] for single values, or jsonb.");
	TargetType element = target;
	element.array = false;
	element.name = element.BuildName();
	bool nested_ok = element.kind == TargetKind::kJsonb || element.kind == TargetKind::kJson;
	bson_iter_t iter;
	if (!bson_iter_init_from_data(&iter, value.value.v_doc.data, value.value.v_doc.data_len))
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target.Name(), "malformed BSON");
	Array array;
	while (bson_iter_next(&iter)) {
		std::string here = path + "." + bson_iter_key(&iter);
		const bson_value_t *item = bson_iter_value(&iter);
		if (item->value_type == BSON_TYPE_NULL || item->value_type == BSON_TYPE_UNDEFINED) {
			array.elements.emplace_back();
			continue;
		}
		if (!nested_ok && (item->value_type == BSON_TYPE_DOCUMENT || item->value_type == BSON_TYPE_ARRAY))
			Fail(sqlstate::kDatatypeMismatch, *item, here, target.Name(),
				 "a nested " + BsonTypeName(item->value_type) + " cannot be an element of " + target.Name(),
				 "Use jsonb (or jsonb[]) for arrays that hold documents or arrays.");
		array.elements.push_back(ConvertScalar(*item, element, here));
	}
	if (iter.err_off != 0)
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target.Name(), "malformed BSON");
	return Value{std::move(array)};
}

} // namespace

namespace internal {

bool AssignText(const bson_value_t &value, const TargetType &target, const std::string &path, Value *out) {
	if (target.kind != TargetKind::kText || target.array ||
		(value.value_type != BSON_TYPE_UTF8 && value.value_type != BSON_TYPE_OID))
		return false;
	char hex[25];
	std::string built;
	const std::string &name = target.name.empty() ? (built = target.BuildName()) : target.name;
	const std::string_view text = *StringOrIdText(value, path, name, hex); // as TextForm
	if (Text *held = std::get_if<Text>(&out->v))
		held->value.assign(text.data(), text.size());
	else
		out->v = Text{std::string(text)};
	return true;
}

} // namespace internal

Value ConvertValue(const bson_value_t &value, const TargetType &target, const std::string &path) {
	if (value.value_type == BSON_TYPE_NULL || value.value_type == BSON_TYPE_UNDEFINED)
		return Value{};
	if (target.array)
		return ConvertArray(value, target, path);
	return ConvertScalar(value, target, path);
}

Value ConvertExtendedJson(const bson_value_t &value, const TargetType &target, const std::string &path) {
	std::string json = internal::RenderJson(value, true, path, target.Name());
	if (target.kind == TargetKind::kJsonb || target.kind == TargetKind::kJson)
		return Value{JsonText{std::move(json), target.kind == TargetKind::kJsonb}};
	return Value{Text{std::move(json)}};
}

Value ConvertPrimaryKey(const bson_value_t *value, const mapping::Column &pk, const TargetType &target,
						const std::string &path) {
	// Extended JSON holds any _id, null included (`null`: MongoDB allows one document with _id null).
	if (value && pk.format == mapping::Format::kExtendedJson)
		return ConvertExtendedJson(*value, target, path);
	if (!value || value->value_type == BSON_TYPE_NULL || value->value_type == BSON_TYPE_UNDEFINED)
		throw ConversionError(internal::kNotNullViolation,
							  "document has no value at \"" + path + "\" for primary key column \"" + pk.name + "\"",
							  path, value ? BsonTypeName(value->value_type) : "missing", {},
							  "Every document needs a value for the primary key's path (a null _id: give the key "
							  "\"format\": \"extjson\").");
	if (target.kind == TargetKind::kText && value->value_type != BSON_TYPE_UTF8 && value->value_type != BSON_TYPE_OID)
		Fail(sqlstate::kInvalidParameterValue, *value, path, "text primary key \"" + pk.name + "\"",
			 "only strings and ObjectIds keep distinct keys distinct as plain text",
			 "Add \"format\": \"extjson\" to column \"" + pk.name +
				 "\" (canonical Extended JSON, injective for every _id type), or give it a type matching the _id.");
	return ConvertValue(*value, target, path);
}

namespace {

// Descend moves current, positioned on path[0], to the value at the rest of path.
bool Descend(bson_iter_t current, const mapping::Path &path, bson_iter_t *iter) {
	for (std::size_t i = 1; i < path.size(); ++i) {
		bson_iter_t child;
		if ((!BSON_ITER_HOLDS_DOCUMENT(&current) && !BSON_ITER_HOLDS_ARRAY(&current)) ||
			!bson_iter_recurse(&current, &child) ||
			!bson_iter_find_w_len(&child, path[i].c_str(), static_cast<int>(path[i].size())))
			return false;
		current = child;
	}
	*iter = current;
	return true;
}

} // namespace

bool FindPath(const bson_t &document, const mapping::Path &path, bson_iter_t *iter) {
	bson_iter_t current;
	if (path.empty() || !bson_iter_init(&current, &document) ||
		!bson_iter_find_w_len(&current, path[0].c_str(), static_cast<int>(path[0].size())))
		return false;
	return Descend(current, path, iter);
}

bool TopKeys::Locate(const bson_t &document, uint32_t offsets[kMaxKeys]) const {
	const std::size_t n = keys_.size();
	if (n > kMaxKeys)
		return false;
	std::fill(offsets, offsets + n, 0);
	bson_iter_t iter;
	if (!bson_iter_init(&iter, &document))
		return true;
	std::size_t left = n;
	// Offset 0 is the document's length, never an element: it stands for "not found".
	while (left > 0 && bson_iter_next(&iter)) {
		const uint32_t len = bson_iter_key_len(&iter);
		const char *key = bson_iter_key(&iter);
		for (std::size_t k = 0; k < n; ++k) {
			// The first element of a name wins, as with bson_iter_find_w_len.
			if (offsets[k] == 0 && keys_[k].size() == len && memcmp(keys_[k].data(), key, len) == 0) {
				offsets[k] = iter.off;
				--left;
				break;
			}
		}
	}
	return true;
}

bool TopKeys::FindPath(const bson_t &document, std::size_t k, uint32_t offset, const mapping::Path &path,
					   bson_iter_t *iter) const {
	bson_iter_t current;
	if (offset == 0 || path.empty() ||
		!bson_iter_init_from_data_at_offset(&current, bson_get_data(&document), document.len, offset,
											static_cast<uint32_t>(keys_[k].size())))
		return false;
	return Descend(current, path, iter);
}

std::string DefaultTypeName(const bson_value_t &value) {
	switch (value.value_type) {
	case BSON_TYPE_UTF8:
	case BSON_TYPE_OID:
		return "text";
	case BSON_TYPE_INT32:
		return "integer";
	case BSON_TYPE_INT64:
		return "bigint";
	case BSON_TYPE_DOUBLE:
		return "double precision";
	case BSON_TYPE_DECIMAL128:
		return "numeric";
	case BSON_TYPE_BOOL:
		return "boolean";
	case BSON_TYPE_DATE_TIME:
		return "timestamptz";
	case BSON_TYPE_BINARY:
		return IsUuidBinary(value) ? "uuid" : "bytea";
	case BSON_TYPE_NULL:
	case BSON_TYPE_UNDEFINED:
	case BSON_TYPE_EOD:
		return {};
	default:
		return "jsonb";
	}
}

} // namespace mongo_river::convert
