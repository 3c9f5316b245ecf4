// reply_content.cpp: the values of a well-formed reply that libmongoc acts on without a bound (see
// reply_check.hpp). The body has passed CheckDocument, so libbson reads it safely.
#include "mongo_river/mongo/reply_check.hpp"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace mongo_river::mongo {

namespace {

// IterationCount finds the largest iteration count the SCRAM server-first message in payload
// names ("r=…,s=…,i=4096"), read as libmongoc reads it (strtoll: leading white space and a sign
// allowed; libmongoc takes the last "i=", this takes every one); false when it names none. *count
// saturates above kMaxScramIterations.
bool IterationCount(std::string_view payload, uint64_t *count) {
	bool found = false;
	*count = 0;
	size_t at = 0;
	while (at <= payload.size()) {
		size_t comma = payload.find(',', at);
		if (comma == std::string_view::npos)
			comma = payload.size();
		std::string_view attribute = payload.substr(at, comma - at);
		if (attribute.size() > 2 && attribute.substr(0, 2) == "i=") {
			std::string_view number = attribute.substr(2);
			while (!number.empty() && std::strchr(" \t\n\v\f\r", number.front()) && number.front() != '\0')
				number.remove_prefix(1);
			if (!number.empty() && (number.front() == '+' || number.front() == '-'))
				number.remove_prefix(1);
			uint64_t value = 0;
			for (char c : number) {
				if (c < '0' || c > '9')
					break; // (strtoll stops there too)
				value = std::min(value * 10 + static_cast<uint64_t>(c - '0'), kMaxScramIterations + 1);
			}
			*count = std::max(*count, value);
			found = true;
		}
		at = comma + 1;
	}
	return found;
}

// kMaxMembers: a replica set has at most 50 members (hosts, passives and arbiters together).
constexpr size_t kMaxMembers = 50;

// CheckMembers checks a hello reply's member list (hosts, passives or arbiters) that iter points at:
// libmongoc adds each element as a server, and aborts or crashes on one that is not a string or that
// it cannot parse as host[:port].
bool CheckMembers(const bson_iter_t *iter, const std::string &name, size_t *members, std::string *why) {
	bson_iter_t member;
	if (!BSON_ITER_HOLDS_ARRAY(iter) || !bson_iter_recurse(iter, &member))
		return true; // (libmongoc reads only arrays)
	while (bson_iter_next(&member)) {
		if (++*members > kMaxMembers) {
			*why = "hello reply listing more than " + std::to_string(kMaxMembers) +
				   " replica set members (a replica set has at most 50)";
			return false;
		}
		if (!BSON_ITER_HOLDS_UTF8(&member)) {
			*why = "hello reply whose " + name + " holds a " + (BSON_ITER_HOLDS_NULL(&member) ? "null" : "non-string") +
				   " member";
			return false;
		}
		uint32_t len = 0;
		const char *host = bson_iter_utf8(&member, &len);
		bson_error_t error;
		mongoc_uri_t *uri = nullptr;
		if (len > 0 && len <= BSON_HOST_NAME_MAX + 6 && std::strlen(host) == len)
			uri = mongoc_uri_new_with_error(("mongodb://" + std::string(host, len) + "/").c_str(), &error);
		const bool one = uri && mongoc_uri_get_hosts(uri) && !mongoc_uri_get_hosts(uri)->next;
		mongoc_uri_destroy(uri);
		if (!one) {
			*why = "hello reply whose " + name + " holds a member that is no host[:port]: \"" +
				   std::string(host, std::min<uint32_t>(len, 100)) + (len > 100 ? "…" : "") + "\"";
			return false;
		}
	}
	return true;
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
	size_t members = 0;
	while (bson_iter_next(&iter)) {
		const std::string_view key = bson_iter_key(&iter);
		if (key == "hosts" || key == "passives" || key == "arbiters") {
			if (!CheckMembers(&iter, std::string(key), &members, why))
				return false;
		} else if (key == "compression" && BSON_ITER_HOLDS_ARRAY(&iter)) {
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
