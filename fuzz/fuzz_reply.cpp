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
#include "../test/unit/reply_walk.hpp"

namespace {

// CheckAccepted traps unless the OP_MSG's body (the one message at data) is readable.
void CheckAccepted(const uint8_t *message, size_t size) {
	uint32_t opcode;
	std::memcpy(&opcode, message + 12, 4);
	if (opcode != 2013)
		return; // OP_REPLY: the handshake's; its documents are checked the same way
	uint32_t body_len;
	std::memcpy(&body_len, message + 21, 4);
	if (size < 25 || !mongo_river::reply_walk::ReadAsTheRiverDoes(message + 21, body_len))
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
