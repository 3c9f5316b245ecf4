// names.cpp: default identifiers for collections and field paths (rules in names.hpp).
#include "mongo_river/mapping/names.hpp"

#include <cstdio>

namespace mongo_river::mapping {

namespace {

// kHashSuffixBytes is the length of "_" plus 8 hex digits appended to shortened identifiers.
constexpr std::size_t kHashSuffixBytes = 9;

// IsIdentifierChar tells whether c is kept as is by DefaultIdentifier (after lowercasing).
bool IsIdentifierChar(char c) {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// LowerAscii lowercases an ASCII letter and leaves every other byte alone.
char LowerAscii(char c) {
	return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

} // namespace

std::uint32_t Fnv1a32(std::string_view bytes) {
	std::uint32_t hash = 2166136261u;
	for (unsigned char c : bytes) {
		hash ^= c;
		hash *= 16777619u;
	}
	return hash;
}

std::string DefaultIdentifier(std::string_view name) {
	std::string out;
	out.reserve(name.size() + 1);
	bool in_run = false;
	for (char raw : name) {
		char c = LowerAscii(raw);
		if (IsIdentifierChar(c)) {
			out.push_back(c);
			in_run = false;
		} else if (!in_run) {
			out.push_back('_');
			in_run = true;
		}
	}
	if (out.empty())
		return "_";
	if (out[0] >= '0' && out[0] <= '9')
		out.insert(out.begin(), '_');
	if (out.size() > kMaxIdentifierBytes) {
		char suffix[16];
		std::snprintf(suffix, sizeof suffix, "_%08x", static_cast<unsigned>(Fnv1a32(name)));
		out.resize(kMaxIdentifierBytes - kHashSuffixBytes);
		out += suffix;
	}
	return out;
}

std::string ColumnNameForPath(const std::vector<std::string> &path) {
	std::string joined;
	for (std::size_t i = 0; i < path.size(); ++i) {
		if (i > 0)
			joined.push_back('.');
		joined += path[i];
	}
	return DefaultIdentifier(joined);
}

std::string TruncateIdentifier(std::string_view name, std::size_t max_bytes) {
	if (name.size() <= max_bytes)
		return std::string(name);
	std::size_t cut = max_bytes;
	while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80)
		--cut;
	return std::string(name.substr(0, cut));
}

std::string UniqueName(std::string_view base, const std::function<bool(const std::string &)> &taken) {
	std::string candidate = TruncateIdentifier(base);
	for (unsigned n = 2; taken(candidate); ++n) {
		std::string suffix = "_" + std::to_string(n);
		candidate = TruncateIdentifier(base, kMaxIdentifierBytes - suffix.size()) + suffix;
	}
	return candidate;
}

} // namespace mongo_river::mapping
