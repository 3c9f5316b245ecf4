// fuzz_reply.cpp: libFuzzer target for the check of a source's replies (reply_check.hpp). The input
// is the bytes a connection delivers, read in pieces whose sizes come from the input's first byte.
// Whatever the check lets through must be readable by libbson as libmongoc reads it (every nested
// document framed, iteration without an error), or the target traps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <bson/bson.h>

#include "mongo_river/mongo/reply_check.hpp"

namespace {

// Readable walks a document as libmongoc does: bson_init_static of it and of every nested one.
// level (a reply's body: 0, its cursor: 1, the cursor's batch: 2) makes a batch's documents read as
// libmongoc and the readers read them: their frame, and the rest only if CheckDocument accepts them
// (a reader rejects them otherwise).
bool Readable(const uint8_t *data, uint32_t len, int level = -1) {
	bson_t doc;
	bson_iter_t iter;
	if (!bson_init_static(&doc, data, len) || !bson_iter_init(&iter, &doc))
		return false;
	while (bson_iter_next(&iter)) {
		uint32_t inner_len = 0;
		const uint8_t *inner = nullptr;
		const bool is_doc = BSON_ITER_HOLDS_DOCUMENT(&iter);
		if (is_doc)
			bson_iter_document(&iter, &inner_len, &inner);
		else if (BSON_ITER_HOLDS_ARRAY(&iter))
			bson_iter_array(&iter, &inner_len, &inner);
		if (!inner)
			continue;
		const char *key = bson_iter_key(&iter);
		bool ok;
		if (level == 2 && is_doc) {
			bson_t one;
			std::string why;
			size_t used;
			ok = bson_init_static(&one, inner, inner_len) &&
				 (!mongo_river::mongo::CheckDocument(inner, inner_len, &used, &why) || Readable(inner, inner_len));
		} else if (level == 0 && is_doc && std::strcmp(key, "cursor") == 0) {
			ok = Readable(inner, inner_len, 1);
		} else if (level == 1 && !is_doc &&
				   (std::strcmp(key, "firstBatch") == 0 || std::strcmp(key, "nextBatch") == 0)) {
			ok = Readable(inner, inner_len, 2);
		} else {
			ok = Readable(inner, inner_len);
		}
		if (!ok)
			return false;
	}
	return iter.err_off == 0;
}

// CheckAccepted traps unless the OP_MSG's body (the one message at data) is readable.
void CheckAccepted(const uint8_t *message, size_t size) {
	uint32_t opcode;
	std::memcpy(&opcode, message + 12, 4);
	if (opcode != 2013)
		return; // OP_REPLY: the handshake's; its documents are checked the same way
	uint32_t body_len;
	std::memcpy(&body_len, message + 21, 4);
	if (size < 25 || !Readable(message + 21, body_len, 0))
		__builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1)
		return 0;
	const size_t piece = 1 + data[0];
	++data;
	--size;
	// Make the first message's length agree with the input, so that most inputs reach the check.
	std::string bytes(reinterpret_cast<const char *>(data), size);
	if (bytes.size() >= 4) {
		uint32_t len = static_cast<uint32_t>(bytes.size());
		std::memcpy(bytes.data(), &len, 4);
	}
	mongo_river::mongo::ReplyReader reader;
	// The request the first message answers (its responseTo; OP_QUERY for an OP_REPLY), so that the
	// check goes past the matching of replies to requests.
	if (bytes.size() >= 16) {
		uint32_t request[5] = {20, 0, 0, 2013, 0};
		std::memcpy(&request[1], bytes.data() + 8, 4);
		uint32_t opcode;
		std::memcpy(&opcode, bytes.data() + 12, 4);
		if (opcode == 1)
			request[3] = 2004;
		reader.Sent(reinterpret_cast<const uint8_t *>(request), sizeof(request));
	}
	size_t at = 0;
	while (at < bytes.size()) {
		size_t n = std::min(piece, bytes.size() - at);
		if (!reader.Read(reinterpret_cast<const uint8_t *>(bytes.data()) + at, n))
			return 0;
		at += n;
	}
	if (bytes.size() >= 16 && reader.between_messages())
		CheckAccepted(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
	return 0;
}
