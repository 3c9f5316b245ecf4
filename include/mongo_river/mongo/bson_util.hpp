// bson_util.hpp: small owned-BSON helpers shared by the source readers (PG-free).
#pragma once

#include <cstdint>
#include <string>

#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

// Timestamp is a BSON timestamp {t: seconds, i: increment}: the source's cluster time and oplog
// position. It orders like MongoDB orders timestamps (t, then i).
struct Timestamp {
	uint32_t t = 0;
	uint32_t i = 0;

	bool IsZero() const { return t == 0 && i == 0; }
	// Before returns the instant just before this one (zero stays zero).
	Timestamp Before() const {
		if (IsZero())
			return *this;
		return i > 0 ? Timestamp{t, i - 1} : Timestamp{t - 1, UINT32_MAX};
	}
	uint64_t AsUint64() const { return (static_cast<uint64_t>(t) << 32) | i; }
	friend bool operator==(Timestamp a, Timestamp b) { return a.t == b.t && a.i == b.i; }
	friend bool operator!=(Timestamp a, Timestamp b) { return !(a == b); }
	friend bool operator<(Timestamp a, Timestamp b) { return a.AsUint64() < b.AsUint64(); }
	friend bool operator<=(Timestamp a, Timestamp b) { return a.AsUint64() <= b.AsUint64(); }
	friend bool operator>(Timestamp a, Timestamp b) { return b < a; }
	friend bool operator>=(Timestamp a, Timestamp b) { return b <= a; }
};

// CopyBson returns an owned copy of doc (nullptr when doc is nullptr).
Bson CopyBson(const bson_t *doc);

// BsonFromIter returns an owned copy of the document or array the iterator points at, nullptr when
// it points at anything else.
Bson BsonFromIter(const bson_iter_t *iter);

// WrapValue returns the one-field document {key: value}, the form in which loose values (an _id,
// a resume position) are stored and passed around.
Bson WrapValue(const char *key, const bson_value_t *value);

// ToCanonicalJson returns doc as canonical Extended JSON: lossless, for storing positions as text.
std::string ToCanonicalJson(const bson_t *doc);

// ToRelaxedJson returns doc as relaxed Extended JSON, for messages and test output.
std::string ToRelaxedJson(const bson_t *doc);

// FromJson parses (canonical or relaxed) Extended JSON into an owned document; what names the value
// in the error (SQLSTATE 22P02) raised for malformed text.
Bson FromJson(const std::string &json, const std::string &what);

// FindTimestamp reads the timestamp at dotted path in doc; false when it is absent or not a timestamp.
bool FindTimestamp(const bson_t *doc, const char *dotted_path, Timestamp *out);

// FindString reads the UTF-8 string at dotted path in doc; empty when absent or of another type.
std::string FindString(const bson_t *doc, const char *dotted_path);

} // namespace mongo_river::mongo
