// test_bson.hpp: helpers for unit tests that build BSON from Extended JSON.
#pragma once

#include <stdexcept>
#include <string>

#include <bson/bson.h>

#include "mongo_river/convert/convert.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::test {

// Doc parses Extended JSON (canonical or relaxed) into a BSON document; bad JSON fails the test run.
inline mongo::Bson Doc(const std::string &json) {
	bson_error_t error;
	mongo::Bson doc(bson_new_from_json(reinterpret_cast<const std::uint8_t *>(json.data()),
									   static_cast<ssize_t>(json.size()), &error));
	if (!doc)
		throw std::runtime_error("bad test JSON: " + std::string(error.message) + ": " + json);
	return doc;
}

// ConvertJson converts the value of field "v" of the Extended JSON document json to type_name.
inline convert::Value ConvertJson(const std::string &json, const std::string &type_name,
								  const std::string &path = "v") {
	mongo::Bson doc = Doc(json);
	bson_iter_t iter;
	if (!bson_iter_init_find(&iter, doc.get(), "v"))
		throw std::runtime_error("test document has no field v: " + json);
	return convert::ConvertValue(*bson_iter_value(&iter), convert::ClassifyType(type_name), path);
}

} // namespace mongo_river::test
