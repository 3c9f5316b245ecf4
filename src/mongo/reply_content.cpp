// reply_content.cpp: the values of a well-formed reply that libmongoc acts on without a bound (see
// reply_check.hpp). The body has passed CheckDocument, so libbson reads it safely.
#include "mongo_river/mongo/reply_check.hpp"

#include <bson/bson.h>

#include <string_view>

namespace mongo_river::mongo {

namespace {

// IterationCount finds the SCRAM server-first message's iteration count ("r=…,s=…,i=4096") in
// payload; false when it names none. *count saturates above kMaxScramIterations.
bool IterationCount(std::string_view payload, uint64_t *count) {
	size_t at = 0;
	while (at <= payload.size()) {
		size_t comma = payload.find(',', at);
		if (comma == std::string_view::npos)
			comma = payload.size();
		std::string_view attribute = payload.substr(at, comma - at);
		if (attribute.size() > 2 && attribute.substr(0, 2) == "i=") {
			uint64_t value = 0;
			for (char c : attribute.substr(2)) {
				if (c < '0' || c > '9')
					return false; // libmongoc refuses it itself
				value = value * 10 + static_cast<uint64_t>(c - '0');
				if (value > kMaxScramIterations) {
					value = kMaxScramIterations + 1;
					break;
				}
			}
			*count = value;
			return true;
		}
		at = comma + 1;
	}
	return false;
}

// CheckPayload checks the SCRAM payload (binary) that iter points at, if it is one.
bool CheckPayload(const bson_iter_t *iter, const char *where, std::string *why) {
	if (!BSON_ITER_HOLDS_BINARY(iter))
		return true;
	bson_subtype_t subtype;
	uint32_t len = 0;
	const uint8_t *data = nullptr;
	bson_iter_binary(iter, &subtype, &len, &data);
	uint64_t count = 0;
	if (!IterationCount(std::string_view(reinterpret_cast<const char *>(data), len), &count) ||
		count <= kMaxScramIterations)
		return true;
	*why = std::string("SCRAM challenge (") + where + ") asking for more than " + std::to_string(kMaxScramIterations) +
		   " PBKDF2 iterations, which would hold the process for minutes (mongod's default is 10000 or 15000)";
	return false;
}

} // namespace

bool CheckReplyContent(const uint8_t *doc, size_t len, std::string *why) {
	bson_t body;
	bson_iter_t iter;
	if (!bson_init_static(&body, doc, len) || !bson_iter_init(&iter, &body))
		return true; // (CheckDocument has refused what libbson cannot read)
	while (bson_iter_next(&iter)) {
		const std::string_view key = bson_iter_key(&iter);
		if (key == "compression" && BSON_ITER_HOLDS_ARRAY(&iter)) {
			bson_iter_t names;
			if (bson_iter_recurse(&iter, &names) && bson_iter_next(&names)) {
				std::string name = BSON_ITER_HOLDS_UTF8(&names) ? bson_iter_utf8(&names, nullptr) : "?";
				*why = "hello reply agreeing to compression (" + name +
					   "), which the driver did not offer: a server picks only among the client's compressors";
				return false;
			}
		} else if (key == "payload") {
			if (!CheckPayload(&iter, "payload", why))
				return false;
		} else if (key == "speculativeAuthenticate" && BSON_ITER_HOLDS_DOCUMENT(&iter)) {
			bson_iter_t inner;
			if (bson_iter_recurse(&iter, &inner) && bson_iter_find(&inner, "payload") &&
				!CheckPayload(&inner, "speculativeAuthenticate.payload", why))
				return false;
		}
	}
	return true;
}

} // namespace mongo_river::mongo
