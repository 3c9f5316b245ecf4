// reply_walk.hpp: how libmongoc and the river's readers read a reply that the check accepted; the
// property the unit tests and the fuzz target hold the check to (header-only, libbson).
#pragma once

#include <bson/bson.h>

#include <cstdint>
#include <string>

#include "mongo_river/mongo/reply_check.hpp"

namespace mongo_river::reply_walk {

// ReadWhole reads doc as libmongoc does (bson_iter_next into every document and array, and
// bson_init_static of each, which libmongoc asserts); false if libbson finds anything wrong. (Not
// bson_validate: it refuses names that are not UTF-8, which mongod stores and the converter rejects
// document by document; a reply holding one is not malformed.)
inline bool ReadWhole(const uint8_t *data, uint32_t len) {
	bson_t doc;
	bson_iter_t iter;
	if (!bson_init_static(&doc, data, len) || !bson_iter_init(&iter, &doc))
		return false;
	while (bson_iter_next(&iter)) {
		uint32_t inner_len = 0;
		const uint8_t *inner = nullptr;
		if (BSON_ITER_HOLDS_DOCUMENT(&iter))
			bson_iter_document(&iter, &inner_len, &inner);
		else if (BSON_ITER_HOLDS_ARRAY(&iter))
			bson_iter_array(&iter, &inner_len, &inner);
		if (inner && !ReadWhole(inner, inner_len))
			return false;
	}
	return iter.err_off == 0;
}

// ReadAsTheRiverDoes reads a reply's body as libmongoc and the readers do: the envelope whole; each
// document of its cursor's batch by its frame (bson_init_static, which libmongoc asserts), and whole
// when CheckDocument accepts it (a reader rejects it otherwise). level: 0 the body, 1 its cursor,
// 2 the batch.
inline bool ReadAsTheRiverDoes(const uint8_t *data, uint32_t len, int level = 0) {
	bson_t doc;
	bson_iter_t iter;
	if (!bson_init_static(&doc, data, len) || !bson_iter_init(&iter, &doc))
		return false;
	while (bson_iter_next(&iter)) {
		const bool is_doc = BSON_ITER_HOLDS_DOCUMENT(&iter);
		if (!is_doc && !BSON_ITER_HOLDS_ARRAY(&iter))
			continue;
		uint32_t inner_len;
		const uint8_t *inner;
		if (is_doc)
			bson_iter_document(&iter, &inner_len, &inner);
		else
			bson_iter_array(&iter, &inner_len, &inner);
		const std::string key = bson_iter_key(&iter);
		bool ok;
		if (level == 2 && is_doc) {
			bson_t one;
			std::string why;
			size_t used;
			ok = bson_init_static(&one, inner, inner_len) &&
				 (!mongo::CheckDocument(inner, inner_len, &used, &why) || ReadWhole(inner, inner_len));
		} else if (level == 0 && is_doc && key == "cursor") {
			ok = ReadAsTheRiverDoes(inner, inner_len, 1);
		} else if (level == 1 && !is_doc && (key == "firstBatch" || key == "nextBatch")) {
			ok = ReadAsTheRiverDoes(inner, inner_len, 2);
		} else {
			ok = ReadWhole(inner, inner_len);
		}
		if (!ok)
			return false;
	}
	return iter.err_off == 0;
}

} // namespace mongo_river::reply_walk
