// model.cpp: canonical JSON form of a mapping, paths, targets and comparisons.
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/mapping.hpp"
#include "mongo_river/mapping/names.hpp"

namespace mongo_river::mapping {

namespace {

// PathToJson renders a path dotted when that is unambiguous, else as an array of keys.
Json PathToJson(const Path &path) {
	bool dotted = !path.empty();
	for (const std::string &key : path)
		dotted = dotted && !key.empty() && key.find('.') == std::string::npos;
	if (dotted)
		return Json::NewString(PathText(path));
	Json keys = Json::NewArray();
	for (const std::string &key : path)
		keys.Append(Json::NewString(key));
	return keys;
}

// ColumnsToJson renders columns in model order, each as {path, type[, format]}.
Json ColumnsToJson(const std::vector<Column> &columns) {
	Json object = Json::NewObject();
	for (const Column &column : columns) {
		Json spec = Json::NewObject();
		spec.Set("path", PathToJson(column.path));
		spec.Set("type", Json::NewString(column.type));
		if (column.format == Format::kExtendedJson)
			spec.Set("format", Json::NewString("extjson"));
		else if (column.format == Format::kPresence)
			spec.Set("format", Json::NewString("presence"));
		object.Set(column.name, spec);
	}
	return object;
}

// ArraysToJson renders array mappings recursively in model order.
Json ArraysToJson(const std::vector<ArrayMapping> &arrays) {
	Json object = Json::NewObject();
	for (const ArrayMapping &array : arrays) {
		Json spec = Json::NewObject();
		spec.Set("path", PathToJson(array.path));
		spec.Set("table", Json::NewString(array.table));
		spec.Set("fk", Json::NewString(array.fk));
		if (!array.position.empty())
			spec.Set("position", Json::NewString(array.position));
		if (!array.id.empty())
			spec.Set("id", Json::NewString(array.id));
		spec.Set("columns", ColumnsToJson(array.columns));
		if (!array.arrays.empty())
			spec.Set("arrays", ArraysToJson(array.arrays));
		object.Set(array.name, spec);
	}
	return object;
}

// TargetError builds the Error for a malformed '[schema.]table'.
Error TargetError(std::string_view text, const std::string &problem) {
	return Error(sqlstate::kInvalidParameterValue, "invalid target \"" + std::string(text) + "\": " + problem, {},
				 "Write the target as table or schema.table; double-quote parts that need capitals or dots.");
}

} // namespace

Json MappingToJson(const Mapping &mapping) {
	Json json = Json::NewObject();
	json.Set("pk", Json::NewString(mapping.pk));
	json.Set("columns", ColumnsToJson(mapping.columns));
	if (!mapping.arrays.empty())
		json.Set("arrays", ArraysToJson(mapping.arrays));
	if (!mapping.document.empty())
		json.Set("document", Json::NewString(mapping.document));
	return json;
}

std::string SerializeMapping(const Mapping &mapping, bool pretty) {
	return MappingToJson(mapping).Dump(pretty);
}

Path ParsePath(std::string_view dotted) {
	Path path;
	std::size_t start = 0;
	for (;;) {
		std::size_t dot = dotted.find('.', start);
		path.emplace_back(dotted.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
		if (dot == std::string_view::npos)
			break;
		start = dot + 1;
	}
	if (dotted.empty())
		path.clear();
	return path;
}

std::string PathText(const Path &path) {
	std::string text;
	for (std::size_t i = 0; i < path.size(); ++i)
		text += (i ? "." : "") + path[i];
	return text;
}

Target ParseTarget(std::string_view text) {
	std::vector<std::string> parts;
	std::size_t i = 0;
	while (true) {
		std::string part;
		if (i < text.size() && text[i] == '"') {
			for (++i;; ++i) {
				if (i >= text.size())
					throw TargetError(text, "unterminated quoted name");
				if (text[i] == '"') {
					if (i + 1 < text.size() && text[i + 1] == '"') {
						part.push_back('"');
						++i;
						continue;
					}
					++i;
					break;
				}
				part.push_back(text[i]);
			}
		} else {
			while (i < text.size() && text[i] != '.' && text[i] != '"') {
				char c = text[i++];
				part.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);
			}
		}
		if (part.empty())
			throw TargetError(text, "empty name");
		if (part.size() > kMaxIdentifierBytes)
			throw Error("42602", "invalid target \"" + std::string(text) + "\": name longer than 63 bytes", {},
						"PostgreSQL truncates identifiers to 63 bytes; choose a shorter name.");
		parts.push_back(part);
		if (i >= text.size())
			break;
		if (text[i] != '.')
			throw TargetError(text, "unexpected character after a quoted name");
		++i;
	}
	if (parts.size() > 2)
		throw TargetError(text, "more than two dotted parts");
	if (parts.size() == 2)
		return Target{parts[0], parts[1]};
	return Target{{}, parts[0]};
}

const Column *FindColumn(const std::vector<Column> &columns, std::string_view name) {
	for (const Column &column : columns)
		if (column.name == name)
			return &column;
	return nullptr;
}

bool operator==(const Column &a, const Column &b) {
	return a.name == b.name && a.path == b.path && a.type == b.type && a.format == b.format;
}

bool operator==(const ArrayMapping &a, const ArrayMapping &b) {
	return a.name == b.name && a.path == b.path && a.table == b.table && a.fk == b.fk && a.position == b.position &&
		   a.id == b.id && a.columns == b.columns && a.arrays == b.arrays;
}

bool operator==(const Mapping &a, const Mapping &b) {
	return a.pk == b.pk && a.columns == b.columns && a.arrays == b.arrays && a.document == b.document;
}

} // namespace mongo_river::mapping
