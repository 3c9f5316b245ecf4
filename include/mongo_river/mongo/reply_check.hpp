// reply_check.hpp: every reply from a source is checked before libmongoc parses it (PG-free).
//
// libmongoc 1.23 trusts the framing of what a server sends: an OP_MSG section whose length runs
// past its message, a third section, a document inside a batch whose length is below 5 or past its
// array, an unexpected opCode or flag bit make it read out of bounds or fail one of its assertions
// (abort) — and in a PostgreSQL backend either one restarts the whole server. Structurally broken
// documents it does not assert on end a batch early without an error, which silently drops the
// rest of the batch. So the stream layer (stream_guard.cpp) hands every byte it reads to a
// ReplyReader, which finds the messages in them and checks each one whole, the moment its last
// byte arrives, before libmongoc sees it: a reply that fails the check fails the read like a broken
// connection, and the driver closes the connection, as it does on any network error.
//
// What is checked: the header (length, opCode OP_MSG, or OP_REPLY for the handshake's legacy hello),
// OP_MSG's flag bits (none of 0-15: the driver reads neither checksums nor exhaust replies), its
// sections (a kind-0 body first, then at most one kind-1 sequence: libmongoc keeps two), and every
// document to the last nested byte: lengths inside their container, terminators where the lengths
// say, known element types with their sizes, string lengths and terminators, booleans 0 or 1 —
// except inside the documents of the cursor's batch (the source's data): there only their frame,
// as libmongoc reads them; the readers check each one before reading it and reject a bad one.
// UTF-8 is not checked here (the converter rejects documents it cannot read, with a reason).
// moreToCome is refused because no client of ours asks for it: single-threaded clients monitor the
// server with plain hello commands; a pooled client's awaitable hello (mongod 4.4+) would need it.
//
// Each reply must also answer a request: the reader follows the requests written to its connection
// too (Sent), and a reply must name the oldest request still awaiting one (responseTo) and come in
// the opCode that request calls for (OP_MSG for OP_MSG, OP_REPLY for the legacy OP_QUERY hello).
// libmongoc checks neither: an OP_REPLY where it expects OP_MSG crashes it, and a reply sent twice
// answers the next command.
//
// Two values of a well-formed reply are checked as well (CheckReplyContent), where libmongoc would
// act on them without a bound: a hello reply naming a compressor the driver did not offer (libmongoc
// would then compress its requests), and a SCRAM challenge's iteration count (libmongoc runs that
// many PBKDF2 rounds in one call that nothing interrupts: i=2000000000 holds the process for many
// minutes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace mongo_river::mongo {

// kMaxReplyDepth bounds the nesting of a reply's documents (mongod stores 180 levels at most; a
// reply wraps them in a few more).
inline constexpr int kMaxReplyDepth = 1024;

// kMaxScramIterations bounds a SCRAM challenge's iteration count (mongod's defaults are 10000 for
// SCRAM-SHA-1 and 15000 for SCRAM-SHA-256; a million takes about a second).
inline constexpr uint64_t kMaxScramIterations = 1000000;

// Frames names the documents inside a document that CheckDocument checks by their frame only (length
// within their container, at least 5, a NUL at its end): the source's data, which its reader checks
// later on its own (CheckDocument again) and rejects with a reason, so that one bad document never
// stalls a river by failing its whole reply or event.
enum class Frames {
	kNone,
	kCursorBatch,    // a reply's body: the documents of cursor.firstBatch / cursor.nextBatch
	kEventDocuments, // a change event: fullDocument and fullDocumentBeforeChange
};

// CheckDocument checks that data starts with one well-formed BSON document no longer than size
// bytes (every nested document too, except those frames names). On success *used is its length;
// otherwise *why says what is wrong and where. With kCursorBatch, every element of the batch must be
// a document (libmongoc's cursor ends a batch, without an error, at one that is not).
bool CheckDocument(const uint8_t *data, size_t size, size_t *used, std::string *why, Frames frames = Frames::kNone);

// CheckMessage checks a whole reply: msg_len is the header's messageLength, rest the msg_len - 4
// bytes after it.
bool CheckMessage(uint32_t msg_len, const uint8_t *rest, size_t rest_len, std::string *why);

// CheckReplyContent checks the values of a reply's well-formed body document (len bytes) that
// libmongoc acts on without a bound: "compression" (the driver offers none) and a SCRAM challenge's
// iteration count (in "payload", or "speculativeAuthenticate.payload" of a hello reply).
bool CheckReplyContent(const uint8_t *doc, size_t len, std::string *why);

// ReplyReader follows the messages of one connection through the bytes read from it, in order and
// in any pieces, and checks each message when its last byte arrives. A message read in one piece
// after its 4-byte length (how libmongoc reads a command's reply) is checked where it lies; one read
// in smaller pieces (the handshake's non-blocking reads) is gathered in a copy first.
class ReplyReader {
public:
	// Read takes the next n bytes read from the connection; false when they end a message that fails
	// the check or cannot start one (the connection is unusable from then on: every later Read is
	// false too). why() says what was wrong.
	bool Read(const uint8_t *data, size_t n);
	// Sent takes the next n bytes written to the connection, in order and in any pieces: every
	// request in them awaits its reply, except an OP_MSG with moreToCome (which asks for none).
	void Sent(const uint8_t *data, size_t n);
	const std::string &why() const { return why_; }
	// between_messages tells whether the bytes read so far end a message (or none was started).
	bool between_messages() const { return have_ == 0; }

private:
	struct Request {
		uint32_t id;
		uint32_t opcode; // an OP_COMPRESSED request's original opCode
	};
	bool Fail(std::string why);
	// Answers checks that the message whose bytes after the length are rest answers the oldest
	// awaiting request, and takes that request off the list.
	bool Answers(const uint8_t *rest, std::string *why);
	std::deque<Request> awaited_;
	uint8_t request_head_[20] = {}; // a request's header and the 4 bytes after it
	uint32_t request_have_ = 0;     // bytes of the current request written so far
	uint32_t request_length_ = 0;
	bool requests_lost_ = false; // a request too short to follow was written
	uint8_t length_bytes_[4] = {};
	uint32_t have_ = 0; // bytes of the current message read so far
	uint32_t length_ = 0;
	std::string gathered_; // bytes 4.. of the current message, when it arrives in pieces
	bool failed_ = false;
	std::string why_;
};

} // namespace mongo_river::mongo
