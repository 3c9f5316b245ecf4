// json.hpp: a small JSON document type over jansson, so that jansson stays inside src/mapping/json.cpp.
//
// jansson's json_object() clashes with PostgreSQL's SQL function of the same name (the postgres
// binary's symbol wins at run time), so no other file includes jansson.h and json.cpp never calls
// json_object(). Check after a build: `nm -D --undefined-only mongo_river.so | grep -w json_object`
// must print nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct json_t;

namespace mongo_river::mapping {

enum class JsonType { kObject, kArray, kString, kInteger, kReal, kTrue, kFalse, kNull };

// Json is a reference-counted handle on one JSON value; copies share the value.
class Json {
public:
	Json() = default;
	Json(const Json &other);
	Json(Json &&other) noexcept : value_(std::exchange(other.value_, nullptr)) {}
	Json &operator=(Json other) noexcept {
		std::swap(value_, other.value_);
		return *this;
	}
	~Json();

	// Parse reads UTF-8 JSON text (duplicate object keys refused); malformed text throws Error 22P02
	// (42701 for a duplicate key) whose message starts with what, e.g. "mapping".
	static Json Parse(std::string_view text, std::string_view what);
	// NewObject, NewArray, NewString, NewInteger and NewBool build fresh values; NewString throws
	// Error 22021 for text that is not valid UTF-8.
	static Json NewObject();
	static Json NewArray();
	static Json NewString(std::string_view s);
	static Json NewInteger(std::int64_t v);
	static Json NewBool(bool v);

	// Valid tells whether the handle holds a value (Get returns an invalid one for a missing key).
	bool Valid() const { return value_ != nullptr; }
	// Type is the value's JSON type; call it on valid handles only.
	JsonType Type() const;
	// TypeName names the type for messages: "an object", "a string", ...
	std::string TypeName() const;
	bool IsObject() const { return Valid() && Type() == JsonType::kObject; }
	bool IsArray() const { return Valid() && Type() == JsonType::kArray; }
	bool IsString() const { return Valid() && Type() == JsonType::kString; }
	bool IsBool() const { return Valid() && (Type() == JsonType::kTrue || Type() == JsonType::kFalse); }

	// Members lists an object's keys and values in document order (empty for other types).
	std::vector<std::pair<std::string, Json>> Members() const;
	// Get returns an object's member named key, or an invalid Json when absent.
	Json Get(std::string_view key) const;
	// Elements lists an array's values (empty for other types).
	std::vector<Json> Elements() const;
	// StringValue returns a string's bytes (empty for other types).
	std::string StringValue() const;
	// BoolValue is true for JSON true, false otherwise.
	bool BoolValue() const { return Valid() && Type() == JsonType::kTrue; }

	// Set adds or replaces an object's member; Append adds an array element.
	void Set(std::string_view key, const Json &value);
	void Append(const Json &value);

	// Dump serialises the value, members in insertion order; pretty indents by 2.
	std::string Dump(bool pretty = false) const;

private:
	explicit Json(json_t *owned) : value_(owned) {}
	json_t *value_ = nullptr;
};

} // namespace mongo_river::mapping
