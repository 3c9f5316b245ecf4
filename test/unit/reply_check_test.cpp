// reply_check_test.cpp: what the reply check accepts (every reply mongod sends, in any pieces) and
// refuses (each fault that made libmongoc abort, crash or drop documents), and that whatever it
// accepts, libbson can read to the last nested document.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mongo_river/mongo/reply_check.hpp"
#include "reply_walk.hpp"
#include "test_bson.hpp"

namespace mongo_river::mongo {
namespace {

using Bytes = std::string;

void Put32(Bytes &out, uint32_t v) {
	out.append(reinterpret_cast<const char *>(&v), 4);
}

Bytes Raw(const bson_t *doc) {
	return Bytes(reinterpret_cast<const char *>(bson_get_data(doc)), doc->len);
}

// Message frames body (everything after the header) with a header of opcode.
Bytes Message(int32_t opcode, const Bytes &body) {
	Bytes out;
	Put32(out, static_cast<uint32_t>(16 + body.size()));
	Put32(out, 7);  // requestID
	Put32(out, 42); // responseTo
	Put32(out, static_cast<uint32_t>(opcode));
	return out + body;
}

// OpMsg is a reply as mongod sends it: flag bits 0, one kind-0 section.
Bytes OpMsg(const Bytes &doc, uint32_t flags = 0) {
	Bytes body;
	Put32(body, flags);
	body += '\0';
	body += doc;
	return Message(2013, body);
}

Bytes Reply() {
	return Raw(test::Doc(R"J({"cursor": {"id": {"$numberLong": "7"}, "ns": "d.c", "nextBatch": [
		{"_id": 1, "s": "x", "d": {"$date": 1}, "b": true, "n": null, "a": [1, [2, {"x": {"$binary": {"base64": "AAEC", "subType": "00"}}}]],
		 "o": {"$oid": "0123456789abcdef01234567"}, "r": {"$regularExpression": {"pattern": "a", "options": "i"}},
		 "t": {"$timestamp": {"t": 1, "i": 2}}, "m": {"$minKey": 1}, "M": {"$maxKey": 1}, "dec": {"$numberDecimal": "1.5"},
		 "c": {"$code": "f()"}, "cs": {"$code": "g()", "$scope": {"x": 1}}, "sym": {"$symbol": "s"},
		 "dbp": {"$dbPointer": {"$ref": "c", "$id": {"$oid": "0123456789abcdef01234567"}}}, "u": {"$undefined": true}},
		{"_id": 2}]}, "ok": 1})J")
				   .get());
}

bool Check(const Bytes &message, std::string *why = nullptr) {
	std::string ignored;
	uint32_t len;
	std::memcpy(&len, message.data(), 4);
	return CheckMessage(len, reinterpret_cast<const uint8_t *>(message.data()) + 4, message.size() - 4,
						why ? why : &ignored);
}

// At returns the offset of the first occurrence of text in message.
size_t At(const Bytes &message, const Bytes &text) {
	size_t at = message.find(text);
	EXPECT_NE(at, Bytes::npos) << text;
	return at;
}

// ValueAt returns the offset of the value of the first element of type and name in message.
size_t ValueAt(const Bytes &message, char type, const std::string &name) {
	return At(message, type + name + '\0') + 2 + name.size();
}

void Set32(Bytes &message, size_t at, uint32_t v) {
	std::memcpy(message.data() + at, &v, 4);
}

// Request is a request as libmongoc writes it: requestID id, opcode, then flags (OP_MSG) or 4 more
// bytes, and a body.
Bytes Request(uint32_t id, int32_t opcode = 2013, uint32_t flags = 0) {
	Bytes body;
	Put32(body, flags);
	body += '\0';
	body += Raw(test::Doc(R"J({"getMore": {"$numberLong": "7"}, "$db": "d"})J").get());
	Bytes out;
	Put32(out, static_cast<uint32_t>(16 + body.size()));
	Put32(out, id);
	Put32(out, 0);
	Put32(out, static_cast<uint32_t>(opcode));
	return out + body;
}

// Answering sets reply's responseTo.
Bytes Answering(Bytes reply, uint32_t request_id) {
	Set32(reply, 8, request_id);
	return reply;
}

void SendAll(ReplyReader &reader, const Bytes &bytes) {
	reader.Sent(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
}

TEST(ReplyCheck, AcceptsWhatMongodSends) {
	EXPECT_TRUE(Check(OpMsg(Reply())));
	// A kind-1 document sequence after the body.
	Bytes body;
	Put32(body, 0);
	body += '\0';
	body += Raw(test::Doc(R"({"ok": 1})").get());
	Bytes docs = Raw(test::Doc(R"({"a": 1})").get()) + Raw(test::Doc(R"({"b": "x"})").get());
	body += '\1';
	Put32(body, static_cast<uint32_t>(4 + 10 + docs.size()));
	body += Bytes("documents\0", 10) + docs;
	EXPECT_TRUE(Check(Message(2013, body)));
	// The optional flag bits (16-31) are ignored; the handshake's OP_REPLY.
	EXPECT_TRUE(Check(OpMsg(Reply(), 1u << 16)));
	Bytes reply(20, '\0');
	Set32(reply, 16, 1);
	EXPECT_TRUE(Check(Message(1, reply + Raw(test::Doc(R"({"ismaster": true, "ok": 1})").get()))));
}

TEST(ReplyCheck, RefusesEachFaultThatCrashedOrSilencedTheDriver) {
	const Bytes good = OpMsg(Reply());
	std::string why;
	struct Case {
		const char *name;
		Bytes message;
	};
	std::vector<Case> cases;
	// messageLength one short: the body's last byte (its terminator) is cut off.
	Bytes one_short = good.substr(0, good.size() - 1);
	Set32(one_short, 0, static_cast<uint32_t>(one_short.size()));
	cases.push_back({"one short", one_short});
	// Garbage after the body: a kind-1 section claiming 0xffffffff bytes, or a second kind-0 one.
	Bytes garbage = good + "\x01" + Bytes(63, '\xff');
	Set32(garbage, 0, static_cast<uint32_t>(garbage.size()));
	cases.push_back({"long garbage", garbage});
	Bytes kind0 = good + Bytes("\0\5\0\0\0", 5);
	Set32(kind0, 0, static_cast<uint32_t>(kind0.size()));
	cases.push_back({"second kind 0", kind0});
	// A document of the batch whose length is 3, or runs past its array.
	Bytes small = good;
	Set32(small, ValueAt(good, '\x03', "0"), 3);
	cases.push_back({"document length 3", small});
	Bytes huge = good;
	Set32(huge, ValueAt(good, '\x03', "0"), 0x7FFFFF00);
	cases.push_back({"document length huge", huge});
	// The peer's corruptCursorBatch "truncated": a document claims 64 bytes more than it has.
	Bytes longer = good;
	const size_t doc = good.rfind(Bytes("\x03"
										"1\0",
										3)) +
					   3; // the batch's second document
	uint32_t len;
	std::memcpy(&len, good.data() + doc, 4);
	Set32(longer, doc, len + 64);
	cases.push_back({"document 64 bytes longer", longer});
	// Header and flags.
	Bytes opcode = good;
	Set32(opcode, 12, 1);
	cases.push_back({"OP_REPLY opCode on an OP_MSG", opcode});
	Set32(opcode, 12, 2012);
	cases.push_back({"OP_COMPRESSED", opcode});
	Set32(opcode, 12, 2004);
	cases.push_back({"OP_QUERY", opcode});
	cases.push_back({"checksumPresent", OpMsg(Reply(), 1)});
	cases.push_back({"moreToCome", OpMsg(Reply(), 2)});
	cases.push_back({"no section", Message(2013, Bytes(4, '\0'))});
	// Values inside the batch's first document: the reply passes (its frame is right), the reader's
	// check of that document refuses it.
	std::vector<Case> inside;
	for (auto [name, field, bad] : std::vector<std::tuple<const char *, Bytes, char>>{
			 {"unknown type", Bytes("\x10_id\0", 5), '\x42'},
			 {"boolean 2",
			  Bytes("\x08"
					"b\0",
					3),
			  0},
		 }) {
		Bytes m = good;
		size_t at = At(good, field);
		if (bad)
			m[at] = bad;
		else
			m[at + field.size()] = 2;
		inside.push_back({name, m});
	}
	Bytes string = good;
	Set32(string, ValueAt(good, '\x02', "s"), 1); // "x\0" claims to be "" only: no NUL at its end
	inside.push_back({"string without its terminator", string});
	Bytes scope = good;
	Set32(scope, ValueAt(good, '\x0f', "cs"), 13);
	inside.push_back({"code with scope too short", scope});
	// A batch element that is not a document (libmongoc's cursor would end the batch there).
	Bytes not_doc = good;
	not_doc[doc - 3] = '\x04';
	cases.push_back({"a batch element that is not a document", not_doc});
	for (const Case &c : cases) {
		why.clear();
		EXPECT_FALSE(Check(c.message, &why)) << "accepted: " << c.name;
		EXPECT_FALSE(why.empty()) << c.name;
	}
	const size_t first_doc = ValueAt(good, '\x03', "0");
	for (const Case &c : inside) {
		EXPECT_TRUE(Check(c.message, &why)) << "one bad document failed its whole reply: " << c.name << ": " << why;
		uint32_t doc_len;
		std::memcpy(&doc_len, c.message.data() + first_doc, 4);
		size_t used;
		why.clear();
		EXPECT_FALSE(
			CheckDocument(reinterpret_cast<const uint8_t *>(c.message.data()) + first_doc, doc_len, &used, &why))
			<< "the reader's check accepted: " << c.name;
		EXPECT_FALSE(why.empty()) << c.name;
	}
	// The old binary subtype must repeat its length inside.
	bson_t doc2 = BSON_INITIALIZER;
	const uint8_t inner[] = {3, 0, 0, 0, 'a', 'b', 'c'};
	bson_append_binary(&doc2, "b", 1, BSON_SUBTYPE_BINARY_DEPRECATED, inner, sizeof(inner));
	Bytes raw = Raw(&doc2);
	size_t used;
	EXPECT_TRUE(CheckDocument(reinterpret_cast<const uint8_t *>(raw.data()), raw.size(), &used, &why)) << why;
	Set32(raw, ValueAt(raw, '\x05', "b"), 2);
	EXPECT_FALSE(CheckDocument(reinterpret_cast<const uint8_t *>(raw.data()), raw.size(), &used, &why));
	bson_destroy(&doc2);
	// An OP_REPLY whose count disagrees with its documents.
	Bytes reply(20, '\0');
	Set32(reply, 16, 2);
	EXPECT_FALSE(Check(Message(1, reply + Raw(test::Doc(R"({"ok": 1})").get())), &why));
}

Bytes Nested(int depth) {
	Bytes doc = Raw(test::Doc(R"({"x": 1})").get());
	for (int i = 0; i < depth; ++i) {
		Bytes outer;
		Put32(outer, static_cast<uint32_t>(4 + 3 + doc.size() + 1));
		outer += Bytes("\x03"
					   "a\0",
					   3) +
				 doc + '\0';
		doc = outer;
	}
	return doc;
}

TEST(ReplyCheck, DepthIsBoundedButCoversWhatMongodStores) {
	std::string why;
	size_t used;
	Bytes deep = Nested(200);
	EXPECT_TRUE(CheckDocument(reinterpret_cast<const uint8_t *>(deep.data()), deep.size(), &used, &why)) << why;
	EXPECT_EQ(used, deep.size());
	Bytes deeper = Nested(kMaxReplyDepth + 1);
	EXPECT_FALSE(CheckDocument(reinterpret_cast<const uint8_t *>(deeper.data()), deeper.size(), &used, &why));
	EXPECT_NE(why.find("deep"), std::string::npos) << why;
}

TEST(ReplyCheck, ReaderFindsMessagesInAnyPiecesAndStopsAtTheFirstBadOne) {
	const Bytes good = OpMsg(Reply());
	Bytes bad = good;
	Set32(bad, 12, 1);
	std::mt19937 rng(3);
	for (int round = 0; round < 200; ++round) {
		Bytes stream = good + good + good + bad + good;
		ReplyReader reader;
		for (int i = 0; i < 5; ++i)
			SendAll(reader, Request(42));
		size_t at = 0;
		bool failed_at_bad = false;
		while (at < stream.size()) {
			size_t n = 1 + rng() % (round % 2 ? 7 : 700);
			if (round % 3 == 0 && at % good.size() == 0)
				n = 4; // as libmongoc reads: the length, then the rest
			else if (round % 3 == 0 && at % good.size() == 4)
				n = good.size() - 4;
			n = std::min(n, stream.size() - at);
			bool ok = reader.Read(reinterpret_cast<const uint8_t *>(stream.data()) + at, n);
			at += n;
			if (!ok) {
				failed_at_bad = at > 3 * good.size() && at <= 4 * good.size() + n;
				break;
			}
			EXPECT_LE(at, 4 * good.size() - 1) << "the bad message passed, round " << round;
		}
		EXPECT_TRUE(failed_at_bad) << "round " << round << " stopped at " << at;
		EXPECT_FALSE(reader.Read(reinterpret_cast<const uint8_t *>(good.data()), 4)) << "a failed stream stays failed";
		EXPECT_NE(reader.why().find("OP_REPLY"), std::string::npos) << reader.why();
	}
	// An absurd length fails at once, before the rest is waited for.
	ReplyReader reader;
	const uint8_t negative[4] = {0xfb, 0xff, 0xff, 0xff};
	EXPECT_FALSE(reader.Read(negative, 4));
}

TEST(ReplyCheck, EachReplyAnswersTheOldestRequestInItsOpCode) {
	const Bytes reply = OpMsg(Reply());
	Bytes op_reply_body(20, '\0');
	Set32(op_reply_body, 16, 1); // numberReturned
	const Bytes op_reply = Message(1, op_reply_body + Raw(test::Doc(R"J({"ismaster": true, "ok": 1})J").get()));
	struct Case {
		const char *name;
		Bytes sent;
		Bytes read;
		bool ok;
		const char *why;
	};
	const std::vector<Case> cases = {
		{"OP_MSG answers OP_MSG", Request(5), Answering(reply, 5), true, ""},
		{"OP_REPLY answers the legacy hello", Request(5, 2004), Answering(op_reply, 5), true, ""},
		{"OP_REPLY to OP_MSG (crashed libmongoc)", Request(5), Answering(op_reply, 5), false, "whose reply is OP_MSG"},
		{"OP_MSG to OP_QUERY", Request(5, 2004), Answering(reply, 5), false, "whose reply is OP_REPLY"},
		{"nothing asked", "", Answering(reply, 5), false, "reply to no request"},
		{"the wrong request", Request(5), Answering(reply, 4), false, "request 5 awaits"},
		{"a reply twice", Request(5), Answering(reply, 5) + Answering(reply, 5), false, "reply to no request"},
		{"moreToCome asks for none", Request(5, 2013, 2), Answering(reply, 5), false, "reply to no request"},
		{"two requests in order", Request(5) + Request(6), Answering(reply, 5) + Answering(reply, 6), true, ""},
		{"two requests, out of order", Request(5) + Request(6), Answering(reply, 6), false, "request 5 awaits"},
	};
	for (const Case &c : cases) {
		for (size_t piece : {size_t{1}, size_t{3}, size_t{21}, size_t{1000}}) {
			ReplyReader reader;
			for (size_t at = 0; at < c.sent.size(); at += piece) // requests written in pieces too
				reader.Sent(reinterpret_cast<const uint8_t *>(c.sent.data()) + at, std::min(piece, c.sent.size() - at));
			bool ok = true;
			for (size_t at = 0; at < c.read.size() && ok; at += piece)
				ok = reader.Read(reinterpret_cast<const uint8_t *>(c.read.data()) + at,
								 std::min(piece, c.read.size() - at));
			EXPECT_EQ(ok, c.ok) << c.name << ", pieces of " << piece << ": " << reader.why();
			EXPECT_NE(reader.why().find(c.why), std::string::npos) << c.name << ": " << reader.why();
		}
	}
}

// Hello returns a hello reply (OP_MSG) with extra fields.
Bytes Hello(const std::string &extra) {
	return OpMsg(Raw(test::Doc(R"J({"isWritablePrimary": true, "maxWireVersion": 17)J" + extra + "}").get()));
}

TEST(ReplyCheck, RefusesCompressionNotOfferedAndUnboundedScramIterations) {
	std::string why;
	EXPECT_TRUE(Check(Hello(""), &why)) << why;
	EXPECT_TRUE(Check(Hello(R"J(, "compression": [])J"), &why)) << why;
	EXPECT_FALSE(Check(Hello(R"J(, "compression": ["zlib"])J"), &why));
	EXPECT_NE(why.find("compression (zlib)"), std::string::npos) << why;
	auto payload = [](const std::string &text) {
		bson_t *doc = bson_new();
		bson_append_binary(doc, "payload", -1, BSON_SUBTYPE_BINARY, reinterpret_cast<const uint8_t *>(text.data()),
						   static_cast<uint32_t>(text.size()));
		bson_append_int32(doc, "conversationId", -1, 1);
		Bytes raw = Raw(doc);
		bson_destroy(doc);
		return raw;
	};
	const std::string salt = "r=abc,s=c2FsdA==,";
	for (const auto &[count, ok] : std::vector<std::pair<std::string, bool>>{
			 {"i=15000", true},
			 {"i=1000000", true},
			 {"i=1000001", false},
			 {"i=2000000000", false},
			 {"i=99999999999999999999999", false},
			 {"i=x", true}, // libmongoc refuses it itself
			 // As libmongoc reads it (strtoll, the last i=): a sign, white space, a second i=.
			 {"i=+2000000000", false},
			 {"i= 2000000000", false},
			 {"i=\t2000000000", false},
			 {"i=15000,i=2000000000", false},
			 {"i=2000000000,i=15000", false},
		 }) {
		EXPECT_EQ(Check(OpMsg(payload(salt + count)), &why), ok) << count << ": " << why;
		// The same challenge inside a hello reply's speculativeAuthenticate.
		bson_t *doc = bson_new();
		bson_t inner;
		Bytes challenge = payload(salt + count);
		bson_init_static(&inner, reinterpret_cast<const uint8_t *>(challenge.data()), challenge.size());
		bson_append_bool(doc, "isWritablePrimary", -1, true);
		bson_append_document(doc, "speculativeAuthenticate", -1, &inner);
		EXPECT_EQ(Check(OpMsg(Raw(doc)), &why), ok) << count << " (speculative): " << why;
		bson_destroy(doc);
		if (!ok) {
			EXPECT_NE(why.find("SCRAM"), std::string::npos) << why;
		}
	}
	EXPECT_FALSE(Check(OpMsg(payload("i=99999999,r=abc")), &why)) << "the count as the first attribute";
}

TEST(ReplyCheck, RefusesHelloMembersLibmongocCannotAdd) {
	std::string why;
	EXPECT_TRUE(Check(Hello(R"J(, "setName": "rs0", "hosts": ["a:27017", "b", "[::1]:27018"],
		"passives": ["c.example:1"], "arbiters": [])J"),
					  &why))
		<< why;
	std::string many = R"J(, "hosts": [)J";
	for (int i = 0; i < 51; ++i)
		many += (i ? ", \"h" : "\"h") + std::to_string(i) + ":27017\"";
	many += "]";
	for (const auto &[extra, words] : std::vector<std::pair<std::string, std::string>>{
			 {R"J(, "hosts": ["a:27017", 1])J", "non-string"},
			 {R"J(, "passives": [null])J", "null"},
			 {R"J(, "arbiters": [{"h": "a"}])J", "non-string"},
			 {R"J(, "hosts": [""])J", "no host[:port]"},
			 {R"J(, "hosts": ["[::1"])J", "no host[:port]"},
			 {R"J(, "hosts": [")J" + std::string(1000, 'a') + R"J("])J", "no host[:port]"},
			 {many, "more than 50"},
		 }) {
		EXPECT_FALSE(Check(Hello(extra), &why)) << extra.substr(0, 80);
		EXPECT_NE(why.find(words), std::string::npos) << why;
	}
}

TEST(ReplyCheck, ABatchDocumentIsCheckedByItsFrameItsContentByTheReader) {
	std::string why;
	// {cursor: {id, ns, nextBatch: [{_id: 1, s: "ab"}]}, ok: 1} with s's length made 1000: the
	// document's frame is right, its content is not.
	Bytes bad_inside = OpMsg(Raw(test::Doc(R"J({"cursor": {"id": {"$numberLong": "0"}, "ns": "d.c",
		"nextBatch": [{"_id": 1, "s": "ab"}]}, "ok": 1})J")
									 .get()));
	Set32(bad_inside, ValueAt(bad_inside, '\x02', "s"), 1000);
	EXPECT_TRUE(Check(bad_inside, &why)) << "one bad document must not fail its whole reply: " << why;
	const size_t doc_at = At(bad_inside, Bytes("\x03"
											   "0\0",
											   3)) +
						  3;
	size_t used;
	uint32_t doc_len;
	std::memcpy(&doc_len, bad_inside.data() + doc_at, 4);
	EXPECT_FALSE(CheckDocument(reinterpret_cast<const uint8_t *>(bad_inside.data()) + doc_at, doc_len, &used, &why))
		<< "the reader's check refuses it";
	// The same damage outside the batch (the reply's own fields) fails the reply.
	Bytes bad_envelope = bad_inside;
	Set32(bad_envelope, ValueAt(bad_envelope, '\x02', "s"), 3);
	Set32(bad_envelope, ValueAt(bad_envelope, '\x02', "ns"), 1000);
	EXPECT_FALSE(Check(bad_envelope, &why));
	// A batch document whose frame is wrong (its length runs past the batch) fails the reply.
	Bytes bad_frame = bad_inside;
	Set32(bad_frame, ValueAt(bad_frame, '\x02', "s"), 3);
	Set32(bad_frame, doc_at, doc_len + 64);
	EXPECT_FALSE(Check(bad_frame, &why));
	// firstBatch too; a "nextBatch" that is not the cursor's is checked whole.
	Bytes first = OpMsg(Raw(test::Doc(R"J({"cursor": {"id": {"$numberLong": "0"}, "ns": "d.c",
		"firstBatch": [{"_id": 1, "s": "ab"}]}, "ok": 1})J")
								.get()));
	Set32(first, ValueAt(first, '\x02', "s"), 1000);
	EXPECT_TRUE(Check(first, &why)) << why;
	Bytes elsewhere = OpMsg(Raw(test::Doc(R"J({"other": {"nextBatch": [{"_id": 1, "s": "ab"}]}, "ok": 1})J").get()));
	Set32(elsewhere, ValueAt(elsewhere, '\x02', "s"), 1000);
	EXPECT_FALSE(Check(elsewhere, &why)) << "only cursor.firstBatch / cursor.nextBatch hold the source's documents";
}

TEST(ReplyCheck, AnEventLeavesItsDocumentsToTheirReader) {
	Bytes event = Raw(test::Doc(R"J({"_id": {"_data": "82"}, "operationType": "insert",
		"documentKey": {"_id": "k"}, "fullDocument": {"_id": "k", "s": "ab"}, "ns": {"db": "d", "coll": "c"}})J")
						  .get());
	std::string why;
	size_t used;
	auto check = [&](const Bytes &b, Frames frames) {
		return CheckDocument(reinterpret_cast<const uint8_t *>(b.data()), b.size(), &used, &why, frames);
	};
	Bytes bad_document = event;
	Set32(bad_document, ValueAt(bad_document, '\x02', "s"), 1000);
	EXPECT_TRUE(check(bad_document, Frames::kEventDocuments)) << why;
	EXPECT_FALSE(check(bad_document, Frames::kNone)) << "ApplyDocument's check refuses it";
	Bytes bad_key = event;
	Set32(bad_key, ValueAt(bad_key, '\x02', "_id"), 1000); // documentKey._id
	EXPECT_FALSE(check(bad_key, Frames::kEventDocuments)) << "the event's own fields are checked whole";
	Bytes bad_frame = event;
	Set32(bad_frame, ValueAt(bad_frame, '\x03', "fullDocument"), 200);
	EXPECT_FALSE(check(bad_frame, Frames::kEventDocuments)) << "the document's frame is checked";
}

TEST(ReplyCheck, WhatItAcceptsLibbsonReadsWhole) {
	// Every message with one or two random bytes changed: the check may accept (a changed value) or
	// refuse, but what it accepts, libbson reads to the end without an error.
	const Bytes good = OpMsg(Reply());
	std::mt19937 rng(11);
	int accepted = 0;
	for (int i = 0; i < 30000; ++i) {
		Bytes m = good;
		for (int k = 0; k < 1 + i % 2; ++k)
			m[16 + rng() % (m.size() - 16)] = static_cast<char>(rng() % 3 == 0 ? rng() % 256 : rng() % 8);
		if (!Check(m))
			continue;
		++accepted;
		const uint8_t *body = reinterpret_cast<const uint8_t *>(m.data()) + 21;
		uint32_t len;
		std::memcpy(&len, body, 4);
		ASSERT_TRUE(reply_walk::ReadAsTheRiverDoes(body, len))
			<< "accepted, yet libbson cannot read it (case " << i << "): " << testing::PrintToString(m);
	}
	EXPECT_GT(accepted, 1000);
}

} // namespace
} // namespace mongo_river::mongo
