// parse.cpp: read a mapping document's JSON shape into the Mapping model (validation: validate.cpp).
#include "mongo_river/mapping/mapping.hpp"

#include "mongo_river/error.hpp"

namespace mongo_river::mapping {

namespace {

const char *const kRootKeys[] = {"pk", "columns", "arrays", "document"};
const char *const kColumnKeys[] = {"path", "type", "format"};
const char *const kArrayKeys[] = {"path", "table", "fk", "position", "id", "columns", "arrays"};

// ShapeError builds the 22023 Error for a JSON location whose shape is wrong.
Error ShapeError(const std::string &location, const std::string &problem, const std::string &hint) {
	return Error(sqlstate::kInvalidParameterValue, "invalid mapping: " + location + " " + problem, {}, hint);
}

// AllowedList renders allowed keys for hints: "pk", "columns", ...
template <std::size_t N> std::string AllowedList(const char *const (&keys)[N]) {
	std::string list;
	for (std::size_t i = 0; i < N; ++i)
		list += (i ? ", \"" : "\"") + std::string(keys[i]) + "\"";
	return list;
}

// RefuseUnknownKeys throws for the first member of object whose key is not in keys: a typo such as
// "colums" must not silently lose the columns.
template <std::size_t N>
void RefuseUnknownKeys(const Json &object, const std::string &location, const char *const (&keys)[N]) {
	for (const auto &[key, value] : object.Members()) {
		bool known = false;
		for (const char *allowed : keys)
			known = known || key == allowed;
		if (!known)
			throw ShapeError(location + "." + key, "is not a known key",
							 "Allowed keys here: " + AllowedList(keys) + ".");
	}
}

// RequireObject throws unless value is a JSON object.
void RequireObject(const Json &value, const std::string &location, const std::string &hint) {
	if (!value.IsObject())
		throw ShapeError(location, "must be an object, not " + value.TypeName(), hint);
}

// OptionalString returns the non-empty string member key of object ("" when absent); an empty string
// or another type throws.
std::string OptionalString(const Json &object, const char *key, const std::string &location) {
	Json value = object.Get(key);
	if (!value.Valid())
		return {};
	if (!value.IsString())
		throw ShapeError(location + "." + key, "must be a string, not " + value.TypeName(),
						 "Give a name or leave the key out.");
	if (value.StringValue().empty())
		throw ShapeError(location + "." + key, "is empty", "Give a name or leave the key out.");
	return value.StringValue();
}

// RequiredString returns the string member key of object; absence or another type throws.
std::string RequiredString(const Json &object, const char *key, const std::string &location, const std::string &hint) {
	Json value = object.Get(key);
	if (!value.Valid())
		throw ShapeError(location + "." + key, "is missing", hint);
	if (!value.IsString())
		throw ShapeError(location + "." + key, "must be a string, not " + value.TypeName(), hint);
	return value.StringValue();
}

// ReadPath reads a path given as a dotted string or as an array of key strings.
Path ReadPath(const Json &object, const std::string &location) {
	const std::string hint = "Write the path as a dotted string (\"author.name\") or, when a key contains a dot, as an "
							 "array of keys ([\"key.with.dots\", \"x\"]).";
	Json value = object.Get("path");
	if (!value.Valid())
		throw ShapeError(location + ".path", "is missing", hint);
	if (value.IsString())
		return ParsePath(value.StringValue());
	if (!value.IsArray())
		throw ShapeError(location + ".path", "must be a string or an array of strings, not " + value.TypeName(), hint);
	Path path;
	std::size_t index = 0;
	for (const Json &key : value.Elements()) {
		if (!key.IsString())
			throw ShapeError(location + ".path[" + std::to_string(index) + "]",
							 "must be a string, not " + key.TypeName(), hint);
		path.push_back(key.StringValue());
		++index;
	}
	return path;
}

// ReadFormat reads a column's optional "format".
Format ReadFormat(const Json &spec, const std::string &location) {
	std::string format = OptionalString(spec, "format", location);
	if (format.empty())
		return Format::kDefault;
	if (format == "extjson")
		return Format::kExtendedJson;
	if (format == "presence")
		return Format::kPresence;
	throw ShapeError(location + ".format", "has an unknown value \"" + format + "\"",
					 "Allowed formats: \"extjson\" (canonical Extended JSON text) and \"presence\" (boolean: the "
					 "field exists and is not null).");
}

// ReadColumns reads a "columns" object; absent is allowed only when optional.
std::vector<Column> ReadColumns(const Json &parent, const std::string &location, bool optional) {
	std::vector<Column> columns;
	Json object = parent.Get("columns");
	if (!object.Valid() && optional)
		return columns;
	const std::string hint = "Give \"columns\": {\"name\": {\"path\": \"field\", \"type\": \"text\"}, ...}.";
	if (!object.Valid())
		throw ShapeError(location + ".columns", "is missing", hint);
	RequireObject(object, location + ".columns", hint);
	for (const auto &[name, spec] : object.Members()) {
		std::string here = location + ".columns." + name;
		RequireObject(spec, here, "Each column is {\"path\": ..., \"type\": ...}.");
		RefuseUnknownKeys(spec, here, kColumnKeys);
		Column column;
		column.name = name;
		column.path = ReadPath(spec, here);
		column.type = RequiredString(spec, "type", here, "Give a PostgreSQL type name such as \"text\" or \"bigint\".");
		column.format = ReadFormat(spec, here);
		columns.push_back(std::move(column));
	}
	return columns;
}

// ReadArrays reads an "arrays" object (child tables), recursively.
std::vector<ArrayMapping> ReadArrays(const Json &parent, const std::string &location) {
	std::vector<ArrayMapping> arrays;
	Json object = parent.Get("arrays");
	if (!object.Valid())
		return arrays;
	RequireObject(object, location + ".arrays",
				  "Give \"arrays\": {\"name\": {\"path\": ..., \"table\": ..., \"fk\": ...}}.");
	for (const auto &[name, spec] : object.Members()) {
		std::string here = location + ".arrays." + name;
		RequireObject(spec, here,
					  "Each array mapping is {\"path\": ..., \"table\": ..., \"fk\": ..., \"columns\": {...}}.");
		RefuseUnknownKeys(spec, here, kArrayKeys);
		ArrayMapping array;
		array.name = name;
		array.path = ReadPath(spec, here);
		array.table = RequiredString(spec, "table", here, "Name the child table that receives one row per element.");
		array.fk = RequiredString(spec, "fk", here, "Name the child table's column that holds the parent row's key.");
		array.position = OptionalString(spec, "position", here);
		array.id = OptionalString(spec, "id", here);
		array.columns = ReadColumns(spec, here, true);
		array.arrays = ReadArrays(spec, here);
		arrays.push_back(std::move(array));
	}
	return arrays;
}

} // namespace

Mapping MappingFromJson(const Json &json) {
	RequireObject(json, "mapping", "A mapping is {\"pk\": ..., \"columns\": {...}}.");
	RefuseUnknownKeys(json, "mapping", kRootKeys);
	Mapping mapping;
	mapping.pk = RequiredString(json, "pk", "mapping", "Name the primary key column, e.g. \"pk\": \"id\".");
	mapping.columns = ReadColumns(json, "mapping", false);
	mapping.arrays = ReadArrays(json, "mapping");
	mapping.document = OptionalString(json, "document", "mapping");
	ValidateMapping(mapping);
	return mapping;
}

Mapping ParseMapping(std::string_view json_text) {
	return MappingFromJson(Json::Parse(json_text, "mapping"));
}

} // namespace mongo_river::mapping
