// IsCleanText (review 22) (ASCII words, then bson_utf8_validate) against bson_utf8_validate(false)
// exhaustively: every string of up to 3 bytes, and every byte value at every offset of ASCII
// strings of 1 to 24 bytes, and hostile sequences (NUL, overlongs, surrogates, above U+10FFFF,
// 4-byte sequences cut at the end) at every offset modulo 8 with every tail length.
#include <bson/bson.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../src/convert/internal.hpp"

namespace {

bool Clean(const std::string &s) {
	return mongo_river::convert::internal::IsCleanText(s.data(), s.size());
}

bool Want(const std::string &s) {
	return bson_utf8_validate(s.data(), s.size(), false);
}

TEST(Review22CleanText, EveryShortString) {
	for (int len = 0; len <= 3; len++) {
		const long total = 1L << (8 * len);
		for (long v = 0; v < total; v++) {
			std::string s(size_t(len), '\0');
			for (int i = 0; i < len; i++)
				s[size_t(i)] = char((v >> (8 * i)) & 0xff);
			ASSERT_EQ(Clean(s), Want(s)) << "len " << len << " value " << v;
		}
	}
}

TEST(Review22CleanText, EveryByteAtEveryOffset) {
	for (size_t len = 1; len <= 24; len++)
		for (size_t at = 0; at < len; at++)
			for (int b = 0; b < 256; b++) {
				std::string s(len, 'q');
				s[at] = char(b);
				ASSERT_EQ(Clean(s), Want(s)) << "len " << len << " at " << at << " byte " << b;
				ASSERT_EQ(Clean(s), b >= 1 && b <= 127) << "len " << len << " at " << at << " byte " << b;
			}
}

TEST(Review22CleanText, HostileSequencesAtEveryOffset) {
	const std::vector<std::pair<std::string, bool>> pieces = {
		{std::string(1, '\0'), false},
		{std::string("\xc0\x80", 2), false}, // overlong NUL
		{"\xc1\xbf", false},                 // overlong
		{"\xe0\x80\x80", false},             // overlong 3-byte
		{"\xe0\x9f\xbf", false},             // overlong 3-byte
		{"\xf0\x8f\xbf\xbf", false},         // overlong 4-byte
		{"\xed\xa0\x80", false},             // surrogate
		{"\xed\xbf\xbf", false},             // surrogate
		{"\xf4\x90\x80\x80", false},         // above U+10FFFF
		{"\xf5\x80\x80\x80", false},
		{"\xf8\x88\x80\x80\x80", false},
		{"\xfe", false},
		{"\xff", false},
		{"\x80", false},
		{"\xf0\x9f\x98", false}, // a 4-byte sequence cut short
		{"\xe2\x82", false},
		{"\xc3", false},
		{"\xf0\x9f\x98\x80", true},
		{"\xf4\x8f\xbf\xbf", true},
		{"\xef\xbf\xbf", true},
		{"\xc2\x80", true},
		{"\x7f", true},
	};
	for (const auto &[piece, ok] : pieces)
		for (size_t head = 0; head <= 17; head++)
			for (size_t tail = 0; tail <= 9; tail++) {
				std::string s = std::string(head, 'a') + piece + std::string(tail, 'b');
				ASSERT_EQ(Clean(s), ok) << "head " << head << " tail " << tail;
				ASSERT_EQ(Clean(s), Want(s)) << "head " << head << " tail " << tail;
				// the piece twice, the second one word later
				std::string t = s + std::string(8 - (s.size() % 8), 'c') + piece;
				ASSERT_EQ(Clean(t), ok) << "twice: head " << head << " tail " << tail;
			}
}

} // namespace
