// reply_check.cpp: the structural check of a source's replies (see reply_check.hpp).
#include "mongo_river/mongo/reply_check.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace mongo_river::mongo {

namespace {

constexpr int32_t kOpReply = 1;
constexpr int32_t kOpQuery = 2004;
constexpr int32_t kOpCompressed = 2012;
constexpr int32_t kOpMsg = 2013;
constexpr uint32_t kMoreToCome = 1u << 1;
// kMaxMessageBytes: no server sends more in one message (mongod's maxMessageSizeBytes, fixed).
constexpr uint32_t kMaxMessageBytes = 48000000;

uint32_t U32(const uint8_t *p) {
	uint32_t v;
	std::memcpy(&v, p, 4);
	return v; // little endian: the only byte order this code is built for (x86-64, arm64)
}

std::string At(const std::string &what, size_t offset) {
	return what + " at byte " + std::to_string(offset);
}

std::string Hex(uint32_t v) {
	static const char digits[] = "0123456789abcdef";
	std::string out;
	do {
		out.insert(out.begin(), digits[v & 15]);
		v >>= 4;
	} while (v);
	return "0x" + out;
}

// FixedSize returns the value size of a fixed-size element type; -1 for a type of variable size,
// -2 for an unknown one.
int FixedSize(uint8_t type) {
	switch (type) {
	case 0x01: // double
	case 0x09: // UTC datetime
	case 0x11: // timestamp
	case 0x12: // int64
		return 8;
	case 0x06: // undefined
	case 0x0A: // null
	case 0x7F: // maxKey
	case 0xFF: // minKey
		return 0;
	case 0x07: // ObjectId
		return 12;
	case 0x10: // int32
		return 4;
	case 0x13: // decimal128
		return 16;
	case 0x02: // string
	case 0x03: // document
	case 0x04: // array
	case 0x05: // binary
	case 0x08: // bool
	case 0x0B: // regex
	case 0x0C: // DBPointer
	case 0x0D: // JavaScript code
	case 0x0E: // symbol
	case 0x0F: // code with scope
		return -1;
	default:
		return -2;
	}
}

// StringEnd checks a BSON string (int32 length including its NUL, bytes, NUL) at pos, inside
// [pos, end); returns the offset after it, or 0.
size_t StringEnd(const uint8_t *d, size_t pos, size_t end) {
	if (end - pos < 5)
		return 0;
	uint32_t len = U32(d + pos);
	if (len < 1 || len > end - pos - 4 || d[pos + 4 + len - 1] != 0)
		return 0;
	return pos + 4 + len;
}

// CStringEnd returns the offset after the NUL of the C string at pos, inside [pos, end), or 0.
size_t CStringEnd(const uint8_t *d, size_t pos, size_t end) {
	const void *nul = std::memchr(d + pos, 0, end - pos);
	return nul ? static_cast<size_t>(static_cast<const uint8_t *>(nul) - d) + 1 : 0;
}

// ContainerEnd checks the frame of a document at pos (length >= 5, inside [pos, end), NUL at its
// end) and returns the offset of that NUL, or 0.
size_t ContainerEnd(const uint8_t *d, size_t pos, size_t end) {
	if (end - pos < 5)
		return 0;
	uint32_t len = U32(d + pos);
	if (len < 5 || len > end - pos || d[pos + len - 1] != 0)
		return 0;
	return pos + len - 1;
}

// SmallStack is a stack that holds its first N entries in place: a check of a document nested
// less deeply allocates nothing (it runs once per copied or streamed document).
template <typename T, size_t N> class SmallStack {
public:
	void push_back(T value) {
		if (size_ < N)
			inline_[size_] = value;
		else
			more_.push_back(value);
		++size_;
	}
	void pop_back() {
		if (size_ > N)
			more_.pop_back();
		--size_;
	}
	T back() const { return size_ > N ? more_.back() : inline_[size_ - 1]; }
	size_t size() const { return size_; }
	bool empty() const { return size_ == 0; }

private:
	T inline_[N];
	std::vector<T> more_;
	size_t size_ = 0;
};

} // namespace

bool CheckDocument(const uint8_t *d, size_t size, size_t *used, std::string *why, Frames frames) {
	const bool batch_frames_only = frames == Frames::kCursorBatch;
	// ends holds the offset of the terminating NUL of every open document, innermost last; kinds
	// says which of them is the reply's cursor document or its batch (kCursorBatch).
	SmallStack<size_t, 32> ends;
	enum Kind : uint8_t { kOther, kCursor, kBatch };
	SmallStack<Kind, 32> kinds;
	size_t root_end = ContainerEnd(d, 0, size);
	if (!root_end) {
		*why = size < 5 ? "a document shorter than 5 bytes"
						: "a document whose length runs past its container, or that does not end where its length says";
		return false;
	}
	ends.push_back(root_end);
	kinds.push_back(kOther);
	size_t pos = 4;
	while (true) {
		size_t end = ends.back();
		if (pos == end) { // the innermost document ends here
			++pos;
			ends.pop_back();
			kinds.pop_back();
			if (ends.empty()) {
				*used = pos;
				return true;
			}
			continue;
		}
		const size_t element = pos;
		const uint8_t type = d[pos++];
		size_t key_end = CStringEnd(d, pos, end);
		if (!key_end) {
			*why = At("an element name without its end", element);
			return false;
		}
		pos = key_end;
		// libmongoc's cursors end a batch, without an error, at an element that is not a document.
		if (batch_frames_only && kinds.back() == kBatch && type != 0x03) {
			*why = At("an element of the cursor's batch that is not a document", element);
			return false;
		}
		int fixed = FixedSize(type);
		if (fixed == -2) {
			*why = At("an unknown element type " + Hex(type), element);
			return false;
		}
		if (fixed >= 0) {
			if (end - pos < static_cast<size_t>(fixed)) {
				*why = At("a value running past its document", element);
				return false;
			}
			pos += static_cast<size_t>(fixed);
			continue;
		}
		size_t next = 0;
		switch (type) {
		case 0x02:
		case 0x0D:
		case 0x0E:
			next = StringEnd(d, pos, end);
			break;
		case 0x03:
		case 0x04: {
			size_t inner = ContainerEnd(d, pos, end);
			if (!inner)
				break;
			const std::string_view key(reinterpret_cast<const char *>(d + element + 1), key_end - element - 2);
			if ((batch_frames_only && kinds.back() == kBatch) ||
				(frames == Frames::kEventDocuments && ends.size() == 1 && type == 0x03 &&
				 (key == "fullDocument" || key == "fullDocumentBeforeChange"))) {
				next = inner + 1; // the source's document: its frame only
				break;
			}
			if (static_cast<int>(ends.size()) >= kMaxReplyDepth) {
				*why = At("documents nested too deep", element);
				return false;
			}
			Kind kind = kOther;
			if (batch_frames_only && type == 0x03 && ends.size() == 1 && key == "cursor")
				kind = kCursor;
			else if (type == 0x04 && kinds.back() == kCursor && (key == "firstBatch" || key == "nextBatch"))
				kind = kBatch;
			ends.push_back(inner);
			kinds.push_back(kind);
			pos += 4;
			continue;
		}
		case 0x05: {
			if (end - pos < 5)
				break;
			uint32_t len = U32(d + pos);
			uint8_t subtype = d[pos + 4];
			if (len > end - pos - 5)
				break;
			// The old binary subtype repeats the length inside (libbson checks that it agrees).
			if (subtype == 0x02 && (len < 4 || U32(d + pos + 5) != len - 4))
				break;
			next = pos + 5 + len;
			break;
		}
		case 0x08:
			if (end - pos >= 1 && d[pos] <= 1)
				next = pos + 1;
			break;
		case 0x0B: {
			size_t pattern_end = CStringEnd(d, pos, end);
			next = pattern_end ? CStringEnd(d, pattern_end, end) : 0;
			break;
		}
		case 0x0C: {
			size_t name_end = StringEnd(d, pos, end);
			if (name_end && end - name_end >= 12)
				next = name_end + 12;
			break;
		}
		case 0x0F: {
			// int32 total length, the code (a string), the scope (a document) filling the rest.
			if (end - pos < 4)
				break;
			uint32_t total = U32(d + pos);
			if (total < 14 || total > end - pos)
				break;
			size_t code_end = StringEnd(d, pos + 4, pos + total);
			if (!code_end)
				break;
			size_t scope_end = ContainerEnd(d, code_end, pos + total);
			if (!scope_end || scope_end + 1 != pos + total)
				break;
			if (static_cast<int>(ends.size()) >= kMaxReplyDepth) {
				*why = At("documents nested too deep", element);
				return false;
			}
			ends.push_back(scope_end);
			kinds.push_back(kOther);
			pos = code_end + 4;
			continue;
		}
		}
		if (!next) {
			*why = At("a malformed value", element);
			return false;
		}
		pos = next;
	}
}

bool CheckMessage(uint32_t msg_len, const uint8_t *rest, size_t rest_len, std::string *why) {
	if (msg_len < 16 || rest_len != msg_len - 4) {
		*why = "a message of " + std::to_string(msg_len) + " bytes, shorter than its header";
		return false;
	}
	// rest: requestID (0), responseTo (4), opCode (8), then the body.
	const int32_t opcode = static_cast<int32_t>(U32(rest + 8));
	const uint8_t *body = rest + 12;
	const size_t body_len = rest_len - 12;
	std::string inner;
	if (opcode == kOpReply) {
		// responseFlags, cursorID, startingFrom, numberReturned, then that many documents.
		if (body_len < 20) {
			*why = "an OP_REPLY shorter than its fields";
			return false;
		}
		const uint32_t count = U32(body + 16);
		size_t pos = 20;
		size_t first_len = 0;
		uint32_t seen = 0;
		while (pos < body_len) {
			size_t used = 0;
			if (!CheckDocument(body + pos, body_len - pos, &used, &inner, Frames::kCursorBatch)) {
				*why = "OP_REPLY document " + std::to_string(seen) + ": " + inner;
				return false;
			}
			if (seen == 0)
				first_len = used;
			pos += used;
			++seen;
		}
		if (seen != count || seen == 0) {
			*why = "an OP_REPLY announcing " + std::to_string(count) + " documents and holding " + std::to_string(seen);
			return false;
		}
		return CheckReplyContent(body + 20, first_len, why);
	}
	if (opcode != kOpMsg) {
		*why = opcode == kOpCompressed ? "a compressed message (OP_COMPRESSED), though no compression was agreed"
									   : "a message of opCode " + std::to_string(opcode) + ", not OP_MSG";
		return false;
	}
	if (body_len < 4) {
		*why = "an OP_MSG without its flag bits";
		return false;
	}
	const uint32_t flags = U32(body);
	if (flags & 0xFFFFu) {
		*why = "an OP_MSG with flag bits " + Hex(flags & 0xFFFFu) +
			   " set (checksum or moreToCome), which no command of the driver asks for";
		return false;
	}
	size_t pos = 4;
	int sections = 0;
	size_t doc_at = 0;
	size_t doc_len = 0;
	while (pos < body_len) {
		const uint8_t kind = body[pos++];
		if (sections == 0 ? kind != 0 : kind != 1) {
			*why = sections == 0 ? "an OP_MSG whose first section is not its body (kind 0)"
								 : "an OP_MSG section of kind " + std::to_string(kind) + " after its body";
			return false;
		}
		if (++sections > 2) {
			*why = "an OP_MSG with more than two sections";
			return false;
		}
		size_t used = 0;
		if (kind == 0) {
			if (!CheckDocument(body + pos, body_len - pos, &used, &inner, Frames::kCursorBatch)) {
				*why = "the OP_MSG body: " + inner;
				return false;
			}
			doc_at = pos;
			doc_len = used;
			pos += used;
			continue;
		}
		// kind 1: int32 size (itself included), identifier, documents filling the rest.
		if (body_len - pos < 5 || U32(body + pos) < 5 || U32(body + pos) > body_len - pos) {
			*why = "an OP_MSG document sequence whose size runs past its message";
			return false;
		}
		const size_t end = pos + U32(body + pos);
		size_t at = CStringEnd(body, pos + 4, end);
		if (!at) {
			*why = "an OP_MSG document sequence without its identifier";
			return false;
		}
		while (at < end) {
			if (!CheckDocument(body + at, end - at, &used, &inner)) {
				*why = "an OP_MSG document sequence: " + inner;
				return false;
			}
			at += used;
		}
		pos = end;
	}
	if (sections == 0) {
		*why = "an OP_MSG without a body";
		return false;
	}
	return CheckReplyContent(body + doc_at, doc_len, why);
}

bool ReplyReader::Fail(std::string why) {
	failed_ = true;
	why_ = std::move(why);
	gathered_.clear();
	gathered_.shrink_to_fit();
	return false;
}

bool ReplyReader::Read(const uint8_t *data, size_t n) {
	while (n > 0 && !failed_) {
		if (have_ < 4) {
			size_t take = std::min<size_t>(4 - have_, n);
			std::memcpy(length_bytes_ + have_, data, take);
			have_ += static_cast<uint32_t>(take);
			data += take;
			n -= take;
			if (have_ == 4) {
				length_ = U32(length_bytes_);
				if (length_ < 16 || length_ > kMaxMessageBytes)
					return Fail("reply claiming " + std::to_string(static_cast<int32_t>(length_)) + " bytes");
			}
			continue;
		}
		const size_t missing = length_ - have_;
		const size_t take = std::min(missing, n);
		bool ok = true;
		bool answers = true;
		std::string why;
		if (have_ == 4 && take == missing) {
			// the whole rest, where it lies
			answers = Answers(data, &why);
			ok = answers && CheckMessage(length_, data, take, &why);
		} else {
			gathered_.append(reinterpret_cast<const char *>(data), take);
			if (take == missing) {
				const auto *rest = reinterpret_cast<const uint8_t *>(gathered_.data());
				answers = Answers(rest, &why);
				ok = answers && CheckMessage(length_, rest, gathered_.size(), &why);
				gathered_.clear();
				if (gathered_.capacity() > 65536)
					gathered_.shrink_to_fit();
			}
		}
		if (!answers)
			return Fail(why);
		if (!ok)
			return Fail("malformed reply: " + why);
		data += take;
		n -= take;
		have_ += static_cast<uint32_t>(take);
		if (have_ == length_)
			have_ = 0;
	}
	return !failed_;
}

bool ReplyReader::Answers(const uint8_t *rest, std::string *why) {
	// rest: requestID (0), responseTo (4), opCode (8); a message shorter than that fails CheckMessage.
	if (length_ < 16)
		return true;
	const uint32_t response_to = U32(rest + 4);
	const uint32_t opcode = U32(rest + 8);
	if (requests_lost_) {
		*why = "reply the check cannot match: the driver wrote a request shorter than a header";
		return false;
	}
	if (awaited_.empty()) {
		*why = "reply to no request (responseTo " + std::to_string(static_cast<int32_t>(response_to)) +
			   "): every request sent on the connection had its reply";
		return false;
	}
	const Request request = awaited_.front();
	if (response_to != request.id) {
		*why = "reply to request " + std::to_string(static_cast<int32_t>(response_to)) + " while request " +
			   std::to_string(static_cast<int32_t>(request.id)) + " awaits its reply";
		return false;
	}
	// A compressed reply is refused by CheckMessage, with its own reason.
	const bool legacy = request.opcode == static_cast<uint32_t>(kOpQuery);
	const auto expected = static_cast<uint32_t>(legacy ? kOpReply : kOpMsg);
	if (opcode != expected && opcode != static_cast<uint32_t>(kOpCompressed)) {
		auto name = [](uint32_t code) {
			return code == static_cast<uint32_t>(kOpReply) ? std::string("OP_REPLY")
				   : code == static_cast<uint32_t>(kOpMsg) ? std::string("OP_MSG")
														   : "opCode " + std::to_string(static_cast<int32_t>(code));
		};
		*why = "reply in " + name(opcode) + " to " +
			   (legacy ? "an OP_QUERY request (whose reply is OP_REPLY)" : "an OP_MSG request (whose reply is OP_MSG)");
		return false;
	}
	awaited_.pop_front();
	return true;
}

void ReplyReader::Sent(const uint8_t *data, size_t n) {
	constexpr uint32_t kHead = sizeof(request_head_);
	while (n > 0 && !requests_lost_) {
		if (request_have_ < kHead) {
			const size_t take = std::min<size_t>(kHead - request_have_, n);
			std::memcpy(request_head_ + request_have_, data, take);
			request_have_ += static_cast<uint32_t>(take);
			data += take;
			n -= take;
			if (request_have_ < kHead)
				continue;
			request_length_ = U32(request_head_);
			if (request_length_ < kHead) {
				requests_lost_ = true; // (libmongoc writes none: every request has a body)
				break;
			}
			const uint32_t opcode = U32(request_head_ + 12);
			// bytes 16..20: OP_MSG's flag bits, OP_COMPRESSED's original opCode.
			const uint32_t after = U32(request_head_ + 16);
			if (opcode == static_cast<uint32_t>(kOpCompressed))
				awaited_.push_back({U32(request_head_ + 4), after});
			else if (!(opcode == static_cast<uint32_t>(kOpMsg) && (after & kMoreToCome)))
				awaited_.push_back({U32(request_head_ + 4), opcode});
		} else {
			const size_t take = std::min<size_t>(request_length_ - request_have_, n);
			request_have_ += static_cast<uint32_t>(take);
			data += take;
			n -= take;
		}
		if (request_have_ == request_length_)
			request_have_ = 0;
	}
}

} // namespace mongo_river::mongo
