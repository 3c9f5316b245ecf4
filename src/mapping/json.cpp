// json.cpp: the only file that includes jansson (see json.hpp for why); never calls json_object().
#include "mongo_river/mapping/json.hpp"

#include <cstdlib>
#include <memory>

#include <jansson.h>

#include "mongo_river/error.hpp"

namespace mongo_river::mapping {

namespace {

// Require throws an internal Error when jansson could not allocate a value.
json_t *Require(json_t *value) {
	if (!value)
		throw Error(sqlstate::kInternalError, "out of memory while building JSON");
	return value;
}

} // namespace

Json::Json(const Json &other) : value_(json_incref(other.value_)) {}

Json::~Json() {
	json_decref(value_);
}

Json Json::Parse(std::string_view text, std::string_view what) {
	json_error_t error;
	json_t *value = json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
	if (!value) {
		bool duplicate = json_error_code(&error) == json_error_duplicate_key;
		throw Error(duplicate ? sqlstate::kDuplicateColumn : sqlstate::kInvalidTextRepresentation,
					std::string(what) + " is not valid JSON",
					std::string(error.text) + " (line " + std::to_string(error.line) + ", column " +
						std::to_string(error.column) + ")",
					duplicate ? "Each key may appear once in a JSON object." : "Check the JSON syntax.");
	}
	return Json(value);
}

Json Json::NewObject() {
	return Json(Require(json_pack("{}")));
}

Json Json::NewArray() {
	return Json(Require(json_array()));
}

Json Json::NewString(std::string_view s) {
	json_t *value = json_stringn(s.data(), s.size());
	if (!value)
		throw Error("22021", "cannot put a string that is not valid UTF-8 into JSON", {},
					"Names and paths must be valid UTF-8.");
	return Json(value);
}

Json Json::NewInteger(std::int64_t v) {
	return Json(Require(json_integer(v)));
}

Json Json::NewBool(bool v) {
	return Json(Require(json_boolean(v)));
}

JsonType Json::Type() const {
	switch (json_typeof(value_)) {
	case JSON_OBJECT:
		return JsonType::kObject;
	case JSON_ARRAY:
		return JsonType::kArray;
	case JSON_STRING:
		return JsonType::kString;
	case JSON_INTEGER:
		return JsonType::kInteger;
	case JSON_REAL:
		return JsonType::kReal;
	case JSON_TRUE:
		return JsonType::kTrue;
	case JSON_FALSE:
		return JsonType::kFalse;
	case JSON_NULL:
		break;
	}
	return JsonType::kNull;
}

std::string Json::TypeName() const {
	if (!Valid())
		return "missing";
	switch (Type()) {
	case JsonType::kObject:
		return "an object";
	case JsonType::kArray:
		return "an array";
	case JsonType::kString:
		return "a string";
	case JsonType::kInteger:
	case JsonType::kReal:
		return "a number";
	case JsonType::kTrue:
	case JsonType::kFalse:
		return "a boolean";
	case JsonType::kNull:
		break;
	}
	return "null";
}

std::vector<std::pair<std::string, Json>> Json::Members() const {
	std::vector<std::pair<std::string, Json>> members;
	if (!IsObject())
		return members;
	const char *key;
	size_t key_len;
	json_t *value;
	json_object_keylen_foreach(value_, key, key_len, value) {
		members.emplace_back(std::string(key, key_len), Json(json_incref(value)));
	}
	return members;
}

Json Json::Get(std::string_view key) const {
	if (!IsObject())
		return Json();
	json_t *value = json_object_getn(value_, key.data(), key.size());
	return value ? Json(json_incref(value)) : Json();
}

std::vector<Json> Json::Elements() const {
	std::vector<Json> elements;
	if (!IsArray())
		return elements;
	size_t index;
	json_t *value;
	json_array_foreach(value_, index, value) {
		elements.push_back(Json(json_incref(value)));
	}
	return elements;
}

std::string Json::StringValue() const {
	if (!IsString())
		return {};
	return std::string(json_string_value(value_), json_string_length(value_));
}

void Json::Set(std::string_view key, const Json &value) {
	if (json_object_setn(value_, key.data(), key.size(), value.value_) != 0)
		throw Error(sqlstate::kInternalError, "cannot set JSON object member \"" + std::string(key) + "\"");
}

void Json::Append(const Json &value) {
	if (json_array_append(value_, value.value_) != 0)
		throw Error(sqlstate::kInternalError, "cannot append to a JSON array");
}

std::string Json::Dump(bool pretty) const {
	std::unique_ptr<char, decltype(&std::free)> text(
		json_dumps(value_, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | (pretty ? JSON_INDENT(2) : JSON_COMPACT)),
		&std::free);
	if (!text)
		throw Error(sqlstate::kInternalError, "cannot serialise JSON");
	return std::string(text.get());
}

} // namespace mongo_river::mapping
