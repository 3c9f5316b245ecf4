// same_value.cpp: row texts compared with doubles by value (see same_value.hpp).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "mongo_river/convert/same_value.hpp"

namespace mongo_river::convert {

namespace {

// Segment is a piece of a row text: a number literal or a run of other characters.
struct Segment {
	std::string_view text;
	bool number = false;
};

bool IsDigit(char c) {
	return c >= '0' && c <= '9';
}

bool IsWordChar(char c) {
	return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.';
}

// NumberLength returns the length of the number literal -?D+(.D+)?([eE][+-]?D+)? at text[at], or 0.
size_t NumberLength(std::string_view text, size_t at) {
	size_t i = at;
	if (i < text.size() && text[i] == '-')
		i++;
	size_t digits = i;
	while (i < text.size() && IsDigit(text[i]))
		i++;
	if (i == digits)
		return 0;
	if (i + 1 < text.size() && text[i] == '.' && IsDigit(text[i + 1])) {
		i++;
		while (i < text.size() && IsDigit(text[i]))
			i++;
	}
	if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
		size_t e = i + 1;
		if (e < text.size() && (text[e] == '+' || text[e] == '-'))
			e++;
		if (e < text.size() && IsDigit(text[e])) {
			while (e < text.size() && IsDigit(text[e]))
				e++;
			i = e;
		}
	}
	if (i < text.size() && IsWordChar(text[i]))
		return 0; // part of a word (an identifier, a version, a date's piece): not a number
	return i - at;
}

// Split cuts text into number literals (not glued to a word before or after) and other runs.
std::vector<Segment> Split(std::string_view text) {
	std::vector<Segment> segments;
	size_t start = 0, i = 0;
	while (i < text.size()) {
		size_t length = 0;
		bool boundary = i == 0 || !IsWordChar(text[i - 1]) || (text[i] == '-' && text[i - 1] != '.');
		if (boundary && (IsDigit(text[i]) || text[i] == '-'))
			length = NumberLength(text, i);
		if (length == 0) {
			i++;
			continue;
		}
		if (i > start)
			segments.push_back({text.substr(start, i - start), false});
		segments.push_back({text.substr(i, length), true});
		i += length;
		start = i;
	}
	if (start < text.size())
		segments.push_back({text.substr(start), false});
	return segments;
}

// SignificantDigits counts the mantissa's digits from its first to its last non-zero one.
int SignificantDigits(std::string_view number) {
	std::string digits;
	for (char c : number) {
		if (c == 'e' || c == 'E')
			break;
		if (IsDigit(c))
			digits += c;
	}
	size_t first = digits.find_first_not_of('0');
	if (first == std::string::npos)
		return 0;
	size_t last = digits.find_last_not_of('0');
	return int(last - first + 1);
}

// SameDouble tells whether a long literal (18+ significant digits) and a short one (17 or fewer)
// denote the same double.
bool SameDouble(std::string_view a, std::string_view b) {
	int da = SignificantDigits(a), db = SignificantDigits(b);
	if (std::min(da, db) > 17 || std::max(da, db) <= 17)
		return false;
	std::string sa(a), sb(b);
	char *end_a = nullptr, *end_b = nullptr;
	double va = std::strtod(sa.c_str(), &end_a);
	double vb = std::strtod(sb.c_str(), &end_b);
	return *end_a == '\0' && *end_b == '\0' && std::isfinite(va) && va == vb;
}

} // namespace

bool SameUpToDoubleText(std::string_view stored, std::string_view expected) {
	if (stored == expected)
		return true;
	std::vector<Segment> a = Split(stored), b = Split(expected);
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); i++) {
		if (a[i].text == b[i].text)
			continue;
		if (!a[i].number || !b[i].number || !SameDouble(a[i].text, b[i].text))
			return false;
	}
	return true;
}

} // namespace mongo_river::convert
