// bson_util.cpp: owned-BSON helpers shared by the source readers.
#include "mongo_river/mongo/bson_util.hpp"

#include <memory>

#include "mongo_river/error.hpp"

namespace mongo_river::mongo {

namespace {

// JsonString takes ownership of a libbson-allocated string and returns it as std::string.
std::string JsonString(char *json) {
	std::unique_ptr<char, Deleter<bson_free>> owned(json);
	return owned ? std::string(owned.get()) : std::string();
}

} // namespace

Bson CopyBson(const bson_t *doc) {
	return doc ? Bson(bson_copy(doc)) : Bson();
}

Bson BsonFromIter(const bson_iter_t *iter) {
	if (!BSON_ITER_HOLDS_DOCUMENT(iter) && !BSON_ITER_HOLDS_ARRAY(iter))
		return Bson();
	uint32_t len = 0;
	const uint8_t *data = nullptr;
	if (BSON_ITER_HOLDS_DOCUMENT(iter))
		bson_iter_document(iter, &len, &data);
	else
		bson_iter_array(iter, &len, &data);
	return Bson(bson_new_from_data(data, len));
}

Bson WrapValue(const char *key, const bson_value_t *value) {
	Bson doc = NewBson();
	bson_append_value(doc.get(), key, -1, value);
	return doc;
}

std::string ToCanonicalJson(const bson_t *doc) {
	return doc ? JsonString(bson_as_canonical_extended_json(doc, nullptr)) : std::string("null");
}

std::string ToRelaxedJson(const bson_t *doc) {
	return doc ? JsonString(bson_as_relaxed_extended_json(doc, nullptr)) : std::string("null");
}

Bson FromJson(const std::string &json, const std::string &what) {
	bson_error_t error;
	Bson doc(
		bson_new_from_json(reinterpret_cast<const uint8_t *>(json.data()), static_cast<ssize_t>(json.size()), &error));
	if (!doc)
		throw Error(sqlstate::kInvalidTextRepresentation, "invalid " + what, error.message,
					"Expected a JSON object in MongoDB Extended JSON.");
	return doc;
}

bool FindTimestamp(const bson_t *doc, const char *dotted_path, Timestamp *out) {
	bson_iter_t iter;
	bson_iter_t found;
	if (!doc || !bson_iter_init(&iter, doc) || !bson_iter_find_descendant(&iter, dotted_path, &found) ||
		!BSON_ITER_HOLDS_TIMESTAMP(&found))
		return false;
	bson_iter_timestamp(&found, &out->t, &out->i);
	return true;
}

std::string FindString(const bson_t *doc, const char *dotted_path) {
	bson_iter_t iter;
	bson_iter_t found;
	if (!doc || !bson_iter_init(&iter, doc) || !bson_iter_find_descendant(&iter, dotted_path, &found) ||
		!BSON_ITER_HOLDS_UTF8(&found))
		return std::string();
	uint32_t len = 0;
	const char *s = bson_iter_utf8(&found, &len);
	return std::string(s, len);
}

} // namespace mongo_river::mongo
