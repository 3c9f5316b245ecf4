// mapping.hpp: the mapping model of ARCHITECTURE.md §3, its JSON parser/validator and serialiser (PG-free).
//
// Format (keys beyond §3 are marked "extension"):
//   {"pk": COLUMN, "columns": {NAME: COLUMN_SPEC, ...}, "arrays": {NAME: ARRAY_SPEC, ...}, "document": NAME}
//   COLUMN_SPEC = {"path": "a.b" | ["key.with.dots", "x"], "type": PG_TYPE,
//                  "format": "extjson" | "presence"}                                 (format: extension)
//       format "extjson": the value as canonical Extended JSON text (needs a text-like type); a text pk
//       column needs it when `_id`s other than strings and ObjectIds occur (always injective).
//       format "presence": boolean, true when the path exists and is not null (mongo-connector's
//       _PRESENCE).
//   ARRAY_SPEC = {"path": PATH, "table": "[schema.]table", "fk": NAME, "position": NAME,
//                 "id": NAME, "columns": {...}, "arrays": {...}}                      (id: extension)
//       One child row per element: fk = the parent row's key (the pk value for a top-level array,
//       the parent's id for a nested one), position (optional) = the element's 0-based index,
//       id (optional) = generated text key "<parent key text>.<index>", needed by nested arrays.
//       A column whose path is "$" takes the element itself (arrays of scalars).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mongo_river/mapping/json.hpp"

namespace mongo_river::mapping {

// Path is a list of keys from the document root; numeric keys index into arrays.
using Path = std::vector<std::string>;

// kElementPath is the one-key path "$" that names an array element itself (array columns only).
inline constexpr const char *kElementKey = "$";

enum class Format { kDefault, kExtendedJson, kPresence };

struct Column {
	std::string name;
	Path path;
	std::string type;
	Format format = Format::kDefault;
};

struct ArrayMapping {
	std::string name;
	Path path;
	std::string table;
	std::string fk;
	std::string position;
	std::string id;
	std::vector<Column> columns;
	std::vector<ArrayMapping> arrays;
};

struct Mapping {
	std::string pk;
	std::vector<Column> columns;
	std::vector<ArrayMapping> arrays;
	std::string document;
};

// Target is a parsed '[schema.]table'; an empty schema means "the default schema".
struct Target {
	std::string schema;
	std::string table;
};

// ParseMapping parses and validates a mapping document (JSON text, e.g. a jsonb's text); any
// problem throws Error with a SQLSTATE, a message naming the JSON location (mapping.columns.x.path)
// and a hint.
Mapping ParseMapping(std::string_view json_text);

// MappingFromJson reads and validates an already parsed mapping document.
Mapping MappingFromJson(const Json &json);

// ValidateMapping checks a mapping built in C++ (inference, import) by the same rules ParseMapping
// applies, so every Mapping handed to the SQL layer has passed them.
void ValidateMapping(const Mapping &mapping);

// MappingToJson builds the canonical JSON form: keys in a fixed order (pk, columns, arrays,
// document; path, type, format; path, table, fk, position, id, columns, arrays), columns in model
// order, paths as dotted strings unless a key contains a dot. ParseMapping reads it back unchanged.
Json MappingToJson(const Mapping &mapping);

// SerializeMapping is MappingToJson's text, compact or indented.
std::string SerializeMapping(const Mapping &mapping, bool pretty = false);

// ParsePath splits a dotted path string into keys ("a.b" -> {"a", "b"}); empty keys are kept so
// that validation can name them.
Path ParsePath(std::string_view dotted);

// PathText renders a path for messages and dotted serialisation: keys joined by '.'.
std::string PathText(const Path &path);

// ParseTarget parses '[schema.]table' like PostgreSQL does: unquoted parts are lowercased,
// "double-quoted" parts kept as written ("" is a quote); bad shapes throw Error 22023 (42602 for an
// invalid name).
Target ParseTarget(std::string_view text);

// FindColumn returns the column named name, or nullptr.
const Column *FindColumn(const std::vector<Column> &columns, std::string_view name);

// operator== compares mappings field by field (used by round-trip tests and the fuzzer).
bool operator==(const Column &a, const Column &b);
bool operator==(const ArrayMapping &a, const ArrayMapping &b);
bool operator==(const Mapping &a, const Mapping &b);

} // namespace mongo_river::mapping
