// text.cpp: UTF-8 checks, Extended JSON rendering, error messages and text forms of Values.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "internal.hpp"
#include "mongo_river/convert/convert.hpp"

namespace mongo_river::convert {

namespace {

using internal::Fail;
using internal::IsCleanText;

// kPreviewBytes bounds how much of a string value a message quotes.
constexpr std::size_t kPreviewBytes = 40;
// kMaxDepth bounds document nesting walked by CheckStrings (MongoDB stores at most 180 levels).
constexpr int kMaxDepth = 200;

// BsonFree owns memory returned by libbson.
struct BsonFree {
	void operator()(char *p) const noexcept { bson_free(p); }
};

// StackBson owns a bson_t initialised in place (no heap block of its own until it grows).
struct StackBson {
	StackBson() { bson_init(&bson); }
	~StackBson() { bson_destroy(&bson); }
	StackBson(const StackBson &) = delete;
	StackBson &operator=(const StackBson &) = delete;
	bson_t bson;
};

} // namespace

// IsCleanText tells whether s is valid UTF-8 without NUL characters. Most text is ASCII: bytes 1 to
// 127 are checked eight at a time, and only a string with another byte is decoded.
bool internal::IsCleanText(const char *s, std::size_t len) {
	constexpr uint64_t kOnes = 0x0101010101010101ULL;
	constexpr uint64_t kHighs = 0x8080808080808080ULL;
	std::size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t word;
		std::memcpy(&word, s + i, 8);
		// A byte with its high bit set, or a zero byte ((word - ones) & ~word sets its high bit).
		if ((word | ((word - kOnes) & ~word)) & kHighs)
			return bson_utf8_validate(s, len, false);
	}
	for (; i < len; i++)
		if (static_cast<unsigned char>(s[i]) - 1u >= 0x7fu)
			return bson_utf8_validate(s, len, false);
	return true;
}

namespace {

// Preview renders a short, safe form of value for messages (empty when none is useful).
std::string Preview(const bson_value_t &value) {
	char buffer[64];
	switch (value.value_type) {
	case BSON_TYPE_INT32:
		return std::to_string(value.value.v_int32);
	case BSON_TYPE_INT64:
		return std::to_string(value.value.v_int64);
	case BSON_TYPE_DOUBLE:
		return internal::FormatDouble(value.value.v_double);
	case BSON_TYPE_BOOL:
		return value.value.v_bool ? "true" : "false";
	case BSON_TYPE_DECIMAL128:
		bson_decimal128_to_string(&value.value.v_decimal128, buffer);
		return buffer;
	case BSON_TYPE_OID:
		bson_oid_to_string(&value.value.v_oid, buffer);
		return buffer;
	case BSON_TYPE_DATE_TIME:
		return std::to_string(value.value.v_datetime) + " ms";
	case BSON_TYPE_UTF8: {
		std::string s(value.value.v_utf8.str, value.value.v_utf8.len);
		if (!IsCleanText(s.data(), s.size()))
			return {};
		if (s.size() <= kPreviewBytes)
			return "\"" + s + "\"";
		std::size_t cut = kPreviewBytes;
		while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
			--cut;
		return "\"" + s.substr(0, cut) + "...\"";
	}
	default:
		return {};
	}
}

// CheckDocumentStrings walks one embedded document or array (see CheckStrings).
void CheckDocumentStrings(const std::uint8_t *data, std::uint32_t len, const bson_value_t &outer,
						  const std::string &path, const std::string &target, int depth) {
	if (depth > kMaxDepth)
		Fail(sqlstate::kInvalidTextRepresentation, outer, path, target, "nested deeper than 200 levels");
	bson_iter_t iter;
	if (!bson_iter_init_from_data(&iter, data, len))
		Fail(sqlstate::kInvalidTextRepresentation, outer, path, target, "malformed BSON");
	while (bson_iter_next(&iter)) {
		std::string here = path + "." + bson_iter_key(&iter);
		const char *key = bson_iter_key(&iter);
		if (!IsCleanText(key, bson_iter_key_len(&iter)))
			Fail(kCharacterNotInRepertoire, outer, path, target, "a key is not valid UTF-8");
		const bson_value_t *value = bson_iter_value(&iter);
		if (value->value_type == BSON_TYPE_DOCUMENT || value->value_type == BSON_TYPE_ARRAY)
			CheckDocumentStrings(value->value.v_doc.data, value->value.v_doc.data_len, outer, here, target, depth + 1);
		else
			internal::CheckStrings(*value, here, target);
	}
	if (iter.err_off != 0)
		Fail(sqlstate::kInvalidTextRepresentation, outer, path, target, "malformed BSON");
}

// ShortestDouble re-renders a double that libbson printed with %.20g (relaxed Extended JSON) in its
// shortest round-trip form, the form FormatDouble gives numeric and text columns: 0.1, not
// 0.10000000000000000555. An integral value keeps libbson's ".0" (3.0, not 3), so that a double stays
// one in the text. The text parses back to the same double, so nothing is lost.
std::string ShortestDouble(std::string_view token) {
	double d = 0;
	auto parsed = std::from_chars(token.data(), token.data() + token.size(), d);
	if (parsed.ec != std::errc() || parsed.ptr != token.data() + token.size() || !std::isfinite(d))
		return std::string(token);
	std::string out = internal::FormatDouble(d);
	if (out.find_first_not_of("-0123456789") == std::string::npos)
		out += ".0";
	return out;
}

// CompactJson drops the blanks libbson puts between JSON tokens (never inside strings), so that
// Extended JSON text has one compact form everywhere: {"$oid":"..."}, not { "$oid" : "..." }. With
// shortest_doubles (relaxed Extended JSON), every number with a fraction or an exponent, which in
// relaxed output is always a double (integers print without either), gets its ShortestDouble form.
std::string CompactJson(std::string_view json, bool shortest_doubles) {
	std::string out;
	out.reserve(json.size());
	bool in_string = false;
	for (std::size_t i = 0; i < json.size(); ++i) {
		char c = json[i];
		if (in_string) {
			out.push_back(c);
			if (c == '\\' && i + 1 < json.size())
				out.push_back(json[++i]);
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
			out.push_back(c);
		} else if (shortest_doubles && (c == '-' || (c >= '0' && c <= '9'))) {
			std::size_t end = json.find_first_not_of("+-0123456789.eE", i);
			std::string_view token = json.substr(i, end == std::string_view::npos ? json.size() - i : end - i);
			if (token.find_first_of(".eE") == std::string_view::npos)
				out.append(token);
			else
				out += ShortestDouble(token);
			i += token.size() - 1;
		} else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
			out.push_back(c);
		}
	}
	return out;
}

// StripWrapper removes the `{ "" : ` ... ` }` wrapper ExtendedJson puts around a lone value and
// compacts the rest (CompactJson).
std::string StripWrapper(const char *json, std::size_t len, bool shortest_doubles) {
	static const std::string_view kPrefix = "{ \"\" : ";
	static const std::string_view kSuffix = " }";
	std::string_view text(json, len);
	if (text.size() < kPrefix.size() + kSuffix.size() || text.substr(0, kPrefix.size()) != kPrefix ||
		text.substr(text.size() - kSuffix.size()) != kSuffix)
		throw Error(sqlstate::kInternalError, "unexpected Extended JSON layout from libbson", std::string(text));
	return CompactJson(text.substr(kPrefix.size(), text.size() - kPrefix.size() - kSuffix.size()), shortest_doubles);
}

// EscapeForId renders a string that is not clean text with \xNN escapes, for messages only.
std::string EscapeForId(const char *s, std::size_t len) {
	std::string out = "\"";
	char buffer[8];
	for (std::size_t i = 0; i < len; ++i) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"') {
			std::snprintf(buffer, sizeof buffer, "\\x%02x", c);
			out += buffer;
		} else {
			out.push_back(static_cast<char>(c));
		}
	}
	return out + "\"";
}

// SameValue compares two alternatives of the same type.
bool SameValue(const std::monostate &, const std::monostate &) {
	return true;
}
bool SameValue(bool a, bool b) {
	return a == b;
}
bool SameValue(const Int &a, const Int &b) {
	return a.value == b.value && a.bytes == b.bytes;
}
bool SameValue(const Float &a, const Float &b) {
	return a.bytes == b.bytes && (a.value == b.value || (a.value != a.value && b.value != b.value));
}
bool SameValue(const Numeric &a, const Numeric &b) {
	return a.text == b.text;
}
bool SameValue(const Text &a, const Text &b) {
	return a.value == b.value;
}
bool SameValue(const Input &a, const Input &b) {
	return a.text == b.text;
}
bool SameValue(const Timestamp &a, const Timestamp &b) {
	return a.micros == b.micros && a.with_time_zone == b.with_time_zone;
}
bool SameValue(const Date &a, const Date &b) {
	return a.days == b.days;
}
bool SameValue(const Uuid &a, const Uuid &b) {
	return a.bytes == b.bytes;
}
bool SameValue(const Bytes &a, const Bytes &b) {
	return a.data == b.data;
}
bool SameValue(const JsonText &a, const JsonText &b) {
	return a.text == b.text && a.binary == b.binary;
}
bool SameValue(const Array &a, const Array &b) {
	return a.elements == b.elements;
}

} // namespace

namespace internal {

void Fail(const char *sqlstate, const bson_value_t &value, const std::string &path, const std::string &target,
		  const std::string &reason, const std::string &hint) {
	std::string type = BsonTypeName(value.value_type);
	std::string preview = Preview(value);
	throw ConversionError(sqlstate,
						  "cannot convert " + type + (preview.empty() ? "" : " " + preview) + " at \"" + path +
							  "\" to " + target + ": " + reason,
						  path, type, {}, hint);
}

void CheckText(const char *s, std::size_t len, const bson_value_t &value, const std::string &path,
			   const std::string &target) {
	if (IsCleanText(s, len))
		return;
	if (bson_utf8_validate(s, len, true))
		Fail(kCharacterNotInRepertoire, value, path, target, "jsonb/text cannot hold NUL (the string contains \\u0000)",
			 "The document is kept as raw BSON in rejects.");
	Fail(kCharacterNotInRepertoire, value, path, target, "the string is not valid UTF-8",
		 "The document is kept as raw BSON in rejects.");
}

void CheckStrings(const bson_value_t &value, const std::string &path, const std::string &target) {
	const auto &v = value.value;
	switch (value.value_type) {
	case BSON_TYPE_UTF8:
		CheckText(v.v_utf8.str, v.v_utf8.len, value, path, target);
		break;
	case BSON_TYPE_SYMBOL:
		CheckText(v.v_symbol.symbol, v.v_symbol.len, value, path, target);
		break;
	case BSON_TYPE_CODE:
		CheckText(v.v_code.code, v.v_code.code_len, value, path, target);
		break;
	case BSON_TYPE_CODEWSCOPE:
		CheckText(v.v_codewscope.code, v.v_codewscope.code_len, value, path, target);
		CheckDocumentStrings(v.v_codewscope.scope_data, v.v_codewscope.scope_len, value, path, target, 1);
		break;
	case BSON_TYPE_REGEX:
		CheckText(v.v_regex.regex, strlen(v.v_regex.regex), value, path, target);
		CheckText(v.v_regex.options, strlen(v.v_regex.options), value, path, target);
		break;
	case BSON_TYPE_DBPOINTER:
		CheckText(v.v_dbpointer.collection, v.v_dbpointer.collection_len, value, path, target);
		break;
	case BSON_TYPE_DOCUMENT:
	case BSON_TYPE_ARRAY:
		CheckDocumentStrings(v.v_doc.data, v.v_doc.data_len, value, path, target, 1);
		break;
	default:
		break;
	}
}

} // namespace internal

std::string BsonTypeName(bson_type_t type) {
	switch (type) {
	case BSON_TYPE_DOUBLE:
		return "double";
	case BSON_TYPE_UTF8:
		return "string";
	case BSON_TYPE_DOCUMENT:
		return "document";
	case BSON_TYPE_ARRAY:
		return "array";
	case BSON_TYPE_BINARY:
		return "binData";
	case BSON_TYPE_UNDEFINED:
		return "undefined";
	case BSON_TYPE_OID:
		return "objectId";
	case BSON_TYPE_BOOL:
		return "bool";
	case BSON_TYPE_DATE_TIME:
		return "date";
	case BSON_TYPE_NULL:
		return "null";
	case BSON_TYPE_REGEX:
		return "regex";
	case BSON_TYPE_DBPOINTER:
		return "dbPointer";
	case BSON_TYPE_CODE:
		return "javascript";
	case BSON_TYPE_SYMBOL:
		return "symbol";
	case BSON_TYPE_CODEWSCOPE:
		return "javascriptWithScope";
	case BSON_TYPE_INT32:
		return "int32";
	case BSON_TYPE_TIMESTAMP:
		return "timestamp";
	case BSON_TYPE_INT64:
		return "int64";
	case BSON_TYPE_DECIMAL128:
		return "decimal128";
	case BSON_TYPE_MINKEY:
		return "minKey";
	case BSON_TYPE_MAXKEY:
		return "maxKey";
	case BSON_TYPE_EOD:
		break;
	}
	return "unknown BSON type";
}

std::string internal::RenderJson(const bson_value_t &value, bool canonical, const std::string &path,
								 const std::string &target) {
	internal::CheckStrings(value, path, target);
	StackBson wrapper;
	if (!bson_append_value(&wrapper.bson, "", 0, &value))
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "the value cannot be copied");
	size_t len = 0;
	std::unique_ptr<char, BsonFree> json(canonical ? bson_as_canonical_extended_json(&wrapper.bson, &len)
												   : bson_as_relaxed_extended_json(&wrapper.bson, &len));
	if (!json)
		Fail(sqlstate::kInvalidTextRepresentation, value, path, target, "malformed BSON");
	return StripWrapper(json.get(), len, !canonical);
}

std::string ExtendedJson(const bson_value_t &value, bool canonical, const std::string &path) {
	return internal::RenderJson(value, canonical, path, "Extended JSON");
}

std::string DocumentJson(const bson_t &document) {
	bson_value_t value;
	value.value_type = BSON_TYPE_DOCUMENT;
	value.value.v_doc.data = const_cast<std::uint8_t *>(bson_get_data(&document));
	value.value.v_doc.data_len = document.len;
	return internal::RenderJson(value, false, "", "jsonb");
}

std::string DocumentIdText(const bson_t *doc) {
	bson_iter_t iter;
	if (doc && bson_iter_init_find(&iter, doc, "_id"))
		return DocumentIdText(*bson_iter_value(&iter));
	return {};
}

std::string DocumentIdText(const bson_value_t &id) {
	if (id.value_type == BSON_TYPE_UTF8) {
		if (IsCleanText(id.value.v_utf8.str, id.value.v_utf8.len))
			return std::string(id.value.v_utf8.str, id.value.v_utf8.len);
		return EscapeForId(id.value.v_utf8.str, id.value.v_utf8.len);
	}
	try {
		return ExtendedJson(id, true, "_id");
	} catch (const ConversionError &) {
		return "(" + BsonTypeName(id.value_type) + " _id that cannot be shown)";
	}
}

std::string ValueText(const Value &value) {
	struct Visitor {
		std::string operator()(const std::monostate &) const { return {}; }
		std::string operator()(bool b) const { return b ? "true" : "false"; }
		std::string operator()(const Int &i) const { return std::to_string(i.value); }
		std::string operator()(const Float &f) const {
			// A real is rendered as the float it is stored as (shortest digits that read back as it).
			if (f.bytes == 4 && std::isfinite(f.value)) {
				char buffer[32];
				auto result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<float>(f.value));
				return std::string(buffer, result.ptr);
			}
			return internal::FormatDouble(f.value);
		}
		std::string operator()(const Numeric &n) const { return n.text; }
		std::string operator()(const Text &t) const { return t.value; }
		std::string operator()(const Input &i) const { return i.text; }
		std::string operator()(const Timestamp &t) const {
			return internal::FormatTimestamp(t.micros, false, t.with_time_zone);
		}
		std::string operator()(const Date &d) const { return internal::FormatDate(d.days); }
		std::string operator()(const Uuid &u) const { return internal::FormatUuid(u.bytes.data()); }
		std::string operator()(const Bytes &b) const {
			static const char kHex[] = "0123456789abcdef";
			std::string out = "\\x";
			for (unsigned char c : b.data) {
				out.push_back(kHex[c >> 4]);
				out.push_back(kHex[c & 15]);
			}
			return out;
		}
		std::string operator()(const JsonText &j) const { return j.text; }
		std::string operator()(const Array &a) const {
			std::string out = "{";
			for (std::size_t i = 0; i < a.elements.size(); ++i) {
				out += i ? "," : "";
				if (a.elements[i].IsNull()) {
					out += "NULL";
					continue;
				}
				out.push_back('"');
				for (char c : ValueText(a.elements[i])) {
					if (c == '"' || c == '\\')
						out.push_back('\\');
					out.push_back(c);
				}
				out.push_back('"');
			}
			return out + "}";
		}
	};
	return std::visit(Visitor{}, value.v);
}

void AppendCopyField(const Value &value, std::string *out) {
	if (value.IsNull()) {
		out->append("\\N");
		return;
	}
	// Kinds that hold their text are escaped in place; the rest are rendered first.
	const std::string *held = nullptr;
	if (const auto *t = std::get_if<Text>(&value.v))
		held = &t->value;
	else if (const auto *in = std::get_if<Input>(&value.v))
		held = &in->text;
	else if (const auto *json = std::get_if<JsonText>(&value.v))
		held = &json->text;
	const std::string rendered = held ? std::string() : ValueText(value);
	for (char c : held ? *held : rendered) {
		switch (c) {
		case '\\':
			out->append("\\\\");
			break;
		case '\n':
			out->append("\\n");
			break;
		case '\r':
			out->append("\\r");
			break;
		case '\t':
			out->append("\\t");
			break;
		default:
			out->push_back(c);
		}
	}
}

bool operator==(const Value &a, const Value &b) {
	if (a.v.index() != b.v.index())
		return false;
	return std::visit(
		[&b](const auto &x) {
			using T = std::decay_t<decltype(x)>;
			return SameValue(x, std::get<T>(b.v));
		},
		a.v);
}

} // namespace mongo_river::convert
