// validate.cpp: the semantic rules every mapping obeys, whether parsed from JSON or built in C++.
#include <set>

#include <bson/bson.h>

#include "mongo_river/convert/types.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/mapping.hpp"
#include "mongo_river/mapping/names.hpp"

namespace mongo_river::mapping {

namespace {

// kMaxColumns is PostgreSQL's limit on a table's columns.
constexpr std::size_t kMaxColumns = 1600;
// kMaxPathKeys bounds path length: MongoDB stores documents nested up to 180 levels (mongod's
// BSONDepth::getMaxDepthForUserStorage(): maxBSONDepth 200 less 20), so the deepest field of a
// stored document is reached by 180 keys.
constexpr std::size_t kMaxPathKeys = 180;
const char *const kDuplicateTable = "42P07";
const char *const kTooManyColumns = "54011";
const char *const kInvalidName = "42602";
const char *const kCharacterNotInRepertoire = "22021";

// Fail throws an Error whose message names the mapping location.
[[noreturn]] void Fail(const char *code, const std::string &location, const std::string &problem,
					   const std::string &hint, const std::string &detail = {}) {
	throw Error(code, "invalid mapping: " + location + " " + problem, detail, hint);
}

// Quote renders a name for messages: "name".
std::string Quote(const std::string &name) {
	return "\"" + name + "\"";
}

// CheckName enforces the identifier rules: non-empty, valid UTF-8 and at most 63 bytes (PostgreSQL would cut a
// longer name silently, and two long names could then collide).
void CheckName(const std::string &name, const std::string &location) {
	if (name.empty())
		Fail(sqlstate::kInvalidParameterValue, location, "is an empty name", "Column and table names cannot be empty.");
	if (name.size() > kMaxIdentifierBytes)
		Fail(kInvalidName, location, "names " + Quote(name) + ", longer than 63 bytes",
			 "PostgreSQL truncates identifiers to 63 bytes; choose a shorter name.");
	if (!bson_utf8_validate(name.data(), name.size(), false))
		Fail(kCharacterNotInRepertoire, location, "is not valid UTF-8 (or holds a NUL character)",
			 "Names must be valid UTF-8.");
}

// CheckPath enforces the path rules: at least one key, no empty key, no key starting with '$'
// (operators, never field names MongoDB lets one query); element_ok allows the path "$" (an array
// element itself).
void CheckPath(const Path &path, const std::string &location, bool element_ok) {
	const std::string hint = "A path is a dotted string (\"author.name\") or an array of non-empty keys.";
	if (element_ok && path.size() == 1 && path[0] == kElementKey)
		return;
	if (path.empty())
		Fail(sqlstate::kInvalidParameterValue, location, "is empty", hint);
	if (path.size() > kMaxPathKeys)
		Fail(sqlstate::kInvalidParameterValue, location, "has more than 180 keys",
			 hint + " MongoDB stores no field deeper than 180 levels.");
	for (std::size_t i = 0; i < path.size(); ++i) {
		if (path[i].empty())
			Fail(sqlstate::kInvalidParameterValue, location,
				 "has an empty key (key " + std::to_string(i + 1) + " of " + Quote(PathText(path)) + ")", hint);
		if (!bson_utf8_validate(path[i].data(), path[i].size(), false))
			Fail(kCharacterNotInRepertoire, location, "has a key that is not valid UTF-8 (or holds a NUL character)",
				 hint);
		if (path[i][0] == '$')
			Fail(sqlstate::kInvalidParameterValue, location, "has key " + Quote(path[i]) + " starting with '$'",
				 element_ok ? "Use the path \"$\" alone for the array element itself; other keys cannot start with '$'."
							: "Keys starting with '$' are MongoDB operators, not fields.");
	}
}

// CheckColumn enforces a column's name, path, type and format rules.
void CheckColumn(const Column &column, const std::string &location, bool element_ok) {
	CheckName(column.name, location);
	CheckPath(column.path, location + ".path", element_ok);
	if (!convert::IsPlausibleTypeName(column.type))
		Fail(sqlstate::kInvalidParameterValue, location + ".type",
			 column.type.empty() ? "is empty" : "is not a type name: " + Quote(column.type),
			 "Give a PostgreSQL type name such as \"text\", \"numeric(10,2)\" or \"text[]\".");
	convert::TargetType target = convert::ClassifyType(column.type);
	if (column.format == Format::kExtendedJson &&
		(target.array || (target.kind != convert::TargetKind::kText && target.kind != convert::TargetKind::kJsonb &&
						  target.kind != convert::TargetKind::kJson)))
		Fail(sqlstate::kDatatypeMismatch, location + ".format", "is \"extjson\" but the type is " + Quote(column.type),
			 "Format \"extjson\" produces text: use type text, jsonb or json.");
	if (column.format == Format::kPresence && (target.array || target.kind != convert::TargetKind::kBoolean))
		Fail(sqlstate::kDatatypeMismatch, location + ".format", "is \"presence\" but the type is " + Quote(column.type),
			 "Format \"presence\" produces true or false: use type boolean.");
}

// TableColumns tracks one table's column names to refuse duplicates (case-sensitive, as quoted
// identifiers are) and the PostgreSQL column limit.
class TableColumns {
public:
	void Add(const std::string &name, const std::string &location, const std::string &role) {
		if (!names_.insert(name).second)
			Fail(sqlstate::kDuplicateColumn, location, "reuses column name " + Quote(name) + " (" + role + ")",
				 "Every column of a table needs its own name; rename one of them.");
		if (names_.size() > kMaxColumns)
			Fail(kTooManyColumns, location, "makes the table exceed 1600 columns",
				 "Map fewer fields; keep the rest in the "
				 "document column.");
	}

private:
	std::set<std::string> names_;
};

// CheckArrays checks array mappings (child tables) under one parent; has_key tells whether the parent
// rows have a single key a nested child can reference.
void CheckArrays(const std::vector<ArrayMapping> &arrays, const std::string &location, bool has_key,
				 std::set<std::string> &tables) {
	for (const ArrayMapping &array : arrays) {
		std::string here = location + ".arrays." + array.name;
		CheckName(array.name, here);
		if (!has_key)
			Fail(sqlstate::kInvalidParameterValue, here,
				 "is nested in an array mapping without \"id\", so its rows could not reference their parent",
				 "Add \"id\": \"<column name>\" to the enclosing array mapping (a generated key per element).");
		CheckPath(array.path, here + ".path", false);
		Target target = ParseTarget(array.table);
		if (!tables.insert(target.schema + "." + target.table).second)
			Fail(kDuplicateTable, here + ".table", "names table " + Quote(array.table) + " a second time",
				 "Each array mapping needs its own child table.");
		TableColumns names;
		CheckName(array.fk, here + ".fk");
		names.Add(array.fk, here + ".fk", "the foreign key");
		if (!array.position.empty()) {
			CheckName(array.position, here + ".position");
			names.Add(array.position, here + ".position", "the position");
		}
		if (!array.id.empty()) {
			CheckName(array.id, here + ".id");
			names.Add(array.id, here + ".id", "the generated id");
		}
		for (const Column &column : array.columns) {
			std::string at = here + ".columns." + column.name;
			CheckColumn(column, at, true);
			names.Add(column.name, at, "a mapped column");
		}
		CheckArrays(array.arrays, here, !array.id.empty(), tables);
	}
}

// CheckPk enforces the primary key rules: present, one of the columns, a scalar type with
// equality, and not a presence flag (which would map every document to true or false).
void CheckPk(const Mapping &mapping) {
	if (mapping.pk.empty())
		Fail(sqlstate::kInvalidParameterValue, "mapping.pk", "is empty", "Name the primary key column, e.g. \"id\".");
	const Column *pk = FindColumn(mapping.columns, mapping.pk);
	if (!pk)
		Fail(sqlstate::kUndefinedColumn, "mapping.pk",
			 "names column " + Quote(mapping.pk) + ", which is not among the columns",
			 "Add a column " + Quote(mapping.pk) + ", usually {\"path\": \"_id\", \"type\": \"text\"}.");
	convert::TargetType target = convert::ClassifyType(pk->type);
	std::string location = "mapping.columns." + pk->name;
	if (target.array || target.kind == convert::TargetKind::kJson)
		Fail(sqlstate::kDatatypeMismatch, location + ".type", "cannot be the primary key's type " + Quote(pk->type),
			 "Use a scalar type with equality, such as text, bigint, uuid or jsonb.");
	if (pk->format == Format::kPresence)
		Fail(sqlstate::kInvalidParameterValue, location + ".format", "\"presence\" cannot be used for the primary key",
			 "A primary key must tell documents apart.");
}

} // namespace

void ValidateMapping(const Mapping &mapping) {
	TableColumns names;
	for (const Column &column : mapping.columns) {
		std::string here = "mapping.columns." + column.name;
		CheckColumn(column, here, false);
		names.Add(column.name, here, "a mapped column");
	}
	if (!mapping.document.empty()) {
		CheckName(mapping.document, "mapping.document");
		names.Add(mapping.document, "mapping.document", "the document column");
	}
	CheckPk(mapping);
	std::set<std::string> tables;
	CheckArrays(mapping.arrays, "mapping", true, tables);
}

} // namespace mongo_river::mapping
