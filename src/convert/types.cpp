// types.cpp: classify PostgreSQL type names for BSON conversion.
#include "mongo_river/convert/types.hpp"

#include <cctype>
#include <vector>

namespace mongo_river::convert {

namespace {

// kMaxTypeNameBytes bounds accepted type names; PostgreSQL's longest built-in names are far shorter.
constexpr std::size_t kMaxTypeNameBytes = 200;

// IsSpace tells whether c is SQL whitespace.
bool IsSpace(char c) {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Normalise lowercases name and reduces whitespace: runs become one space, none at either end or
// around '(', ')', ',', '[', ']', '.'; so "Character  Varying ( 10 )" -> "character varying(10)".
std::string Normalise(std::string_view name) {
	std::string out;
	bool pending_space = false;
	for (char c : name) {
		if (IsSpace(c)) {
			pending_space = !out.empty();
			continue;
		}
		bool punct = c == '(' || c == ')' || c == ',' || c == '[' || c == ']' || c == '.';
		if (pending_space && !punct && out.back() != '(' && out.back() != ',' && out.back() != '[' && out.back() != '.')
			out.push_back(' ');
		pending_space = false;
		out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
	}
	return out;
}

// StripArraySuffix removes one trailing "[]", "[n]" or " array" and reports whether it did.
bool StripArraySuffix(std::string &name) {
	if (name.size() > 6 && name.compare(name.size() - 6, 6, " array") == 0) {
		name.resize(name.size() - 6);
		return true;
	}
	if (name.empty() || name.back() != ']')
		return false;
	std::size_t open = name.rfind('[');
	if (open == std::string::npos)
		return false;
	for (std::size_t i = open + 1; i + 1 < name.size(); ++i)
		if (!std::isdigit(static_cast<unsigned char>(name[i])))
			return false;
	name.resize(open);
	return true;
}

// SplitModifier moves a "(...)" group out of name, keeping the words after it: "timestamp(3) with
// time zone" -> name "timestamp with time zone", modifier "(3)".
void SplitModifier(std::string &name, std::string &modifier) {
	std::size_t open = name.find('(');
	std::size_t close = name.find(')', open == std::string::npos ? 0 : open);
	if (open == std::string::npos || close == std::string::npos)
		return;
	modifier = name.substr(open, close - open + 1);
	std::string rest = name.substr(close + 1);
	name.resize(open);
	if (!rest.empty())
		name += (rest[0] == ' ' ? "" : " ") + rest;
}

// KindOfBase maps a normalised base name (no modifier, no array suffix) to its kind.
TargetKind KindOfBase(const std::string &base) {
	struct Entry {
		const char *name;
		TargetKind kind;
	};
	static const Entry kEntries[] = {
		{"text", TargetKind::kText},
		{"varchar", TargetKind::kText},
		{"character varying", TargetKind::kText},
		{"char", TargetKind::kText},
		{"character", TargetKind::kText},
		{"bpchar", TargetKind::kText},
		{"smallint", TargetKind::kSmallint},
		{"int2", TargetKind::kSmallint},
		{"integer", TargetKind::kInteger},
		{"int", TargetKind::kInteger},
		{"int4", TargetKind::kInteger},
		{"bigint", TargetKind::kBigint},
		{"int8", TargetKind::kBigint},
		{"real", TargetKind::kReal},
		{"float4", TargetKind::kReal},
		{"double precision", TargetKind::kDouble},
		{"float8", TargetKind::kDouble},
		{"float", TargetKind::kDouble},
		{"numeric", TargetKind::kNumeric},
		{"decimal", TargetKind::kNumeric},
		{"boolean", TargetKind::kBoolean},
		{"bool", TargetKind::kBoolean},
		{"timestamptz", TargetKind::kTimestamptz},
		{"timestamp with time zone", TargetKind::kTimestamptz},
		{"timestamp", TargetKind::kTimestamp},
		{"timestamp without time zone", TargetKind::kTimestamp},
		{"date", TargetKind::kDate},
		{"uuid", TargetKind::kUuid},
		{"bytea", TargetKind::kBytea},
		{"jsonb", TargetKind::kJsonb},
		{"json", TargetKind::kJson},
	};
	for (const Entry &entry : kEntries)
		if (base == entry.name)
			return entry.kind;
	return TargetKind::kOther;
}

// IsWordChar tells whether c may appear in an unquoted SQL identifier.
bool IsWordChar(char c) {
	return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

} // namespace

std::string TargetType::BuildName() const {
	std::string name = base;
	if (!modifier.empty()) {
		std::size_t with = name.find(" with");
		if (with != std::string::npos && (kind == TargetKind::kTimestamptz || kind == TargetKind::kTimestamp))
			name.insert(with, modifier);
		else
			name += modifier;
	}
	return array ? name + "[]" : name;
}

TargetType ClassifyType(std::string_view pg_type_name) {
	TargetType type;
	std::string name = Normalise(pg_type_name);
	type.array = StripArraySuffix(name);
	if (type.array) {
		std::string again = name;
		if (StripArraySuffix(again)) {
			type.base = Normalise(pg_type_name);
			type.array = false;
			type.name = type.base;
			return type;
		}
	}
	if (name.rfind("pg_catalog.", 0) == 0)
		name.erase(0, 11);
	SplitModifier(name, type.modifier);
	type.base = name;
	type.kind = KindOfBase(name);
	if (type.kind == TargetKind::kOther) {
		type.base = Normalise(pg_type_name);
		type.modifier.clear();
		if (type.array)
			StripArraySuffix(type.base);
	}
	type.name = type.BuildName();
	return type;
}

std::string KindName(TargetKind kind) {
	switch (kind) {
	case TargetKind::kText:
		return "text";
	case TargetKind::kSmallint:
		return "smallint";
	case TargetKind::kInteger:
		return "integer";
	case TargetKind::kBigint:
		return "bigint";
	case TargetKind::kReal:
		return "real";
	case TargetKind::kDouble:
		return "double precision";
	case TargetKind::kNumeric:
		return "numeric";
	case TargetKind::kBoolean:
		return "boolean";
	case TargetKind::kTimestamptz:
		return "timestamp with time zone";
	case TargetKind::kTimestamp:
		return "timestamp without time zone";
	case TargetKind::kDate:
		return "date";
	case TargetKind::kUuid:
		return "uuid";
	case TargetKind::kBytea:
		return "bytea";
	case TargetKind::kJsonb:
		return "jsonb";
	case TargetKind::kJson:
		return "json";
	case TargetKind::kOther:
		break;
	}
	return "the column's type";
}

bool IsPlausibleTypeName(std::string_view name) {
	if (name.empty() || name.size() > kMaxTypeNameBytes)
		return false;
	std::size_t i = 0;
	auto skip_space = [&] {
		while (i < name.size() && IsSpace(name[i]))
			++i;
	};
	// words, optionally quoted, separated by spaces or dots: "double precision", "public.my type"
	auto words = [&] {
		std::size_t count = 0;
		for (;;) {
			skip_space();
			if (i < name.size() && name[i] == '"') {
				std::size_t close = name.find('"', i + 1);
				if (close == std::string_view::npos || close == i + 1)
					return std::size_t{0};
				i = close + 1;
			} else if (i < name.size() && IsWordChar(name[i]) && !std::isdigit(static_cast<unsigned char>(name[i]))) {
				while (i < name.size() && IsWordChar(name[i]))
					++i;
			} else {
				return count;
			}
			++count;
			skip_space();
			if (i < name.size() && name[i] == '.')
				++i;
		}
	};
	if (words() == 0)
		return false;
	if (i < name.size() && name[i] == '(') {
		std::size_t close = name.find(')', i);
		if (close == std::string_view::npos)
			return false;
		for (std::size_t k = i + 1; k < close; ++k)
			if (!std::isdigit(static_cast<unsigned char>(name[k])) && name[k] != ',' && name[k] != '-' &&
				!IsSpace(name[k]))
				return false;
		i = close + 1;
		words();
	}
	for (;;) {
		skip_space();
		if (i >= name.size())
			return true;
		if (name[i] != '[')
			return false;
		++i;
		while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])))
			++i;
		if (i >= name.size() || name[i] != ']')
			return false;
		++i;
	}
}

} // namespace mongo_river::convert
