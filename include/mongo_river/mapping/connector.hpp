// connector.hpp: import a mongo-connector-postgresql mappings.json into mongo_river mappings (PG-free).
//
// The file is {database: {collection: ENTRY}}; ENTRY = {"pk": COLUMN, "indices": [SQL, ...],
// FIELD: {"dest": COLUMN, "type": TYPE, "index": true}, ...}. FIELD is a dotted path; dest defaults
// to FIELD. Column and table names are folded to lowercase as the tool's unquoted SQL did; a root
// collection's table is DefaultIdentifier(collection).
//   type "_ARRAY" (+ "fk", "dest"): the array's documents go to the child table named by dest, whose
//       own ENTRY in the same database maps the element fields; its field whose dest is fk is the
//       foreign key column (holding the parent's pk); when no field maps to its pk, the pk becomes a
//       generated id column ("<parent key>.<index>", text) — the tool used a SERIAL. An array
//       inside such a child references that text id: its fk may be declared SERIAL or an integer
//       type (as the tool's files do), and the column is created as text all the same.
//   type "_ARRAY_OF_SCALARS" (+ "fk", "dest", "valueField"): one child row per element, the element
//       in column valueField (typed by the child ENTRY's valueField field); the child's pk is a
//       generated id (a scalar has no _id to map).
//   type "_PRESENCE": a boolean column, true when the field exists and is not null.
//   "index": true -> a plain index idx_<table>_<column>.
//   "indices": only [UNIQUE] INDEX name ON table(column, ...) whose table is created by this mapping
//       and whose columns it maps; returned as structured definitions, never as SQL text.
//   "transform" (Python code) is refused (0A000).
// Entries named as an array's dest are child tables only, not collections of their own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mongo_river/mapping/json.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace mongo_river::mapping {

// IndexDefinition is one index to create, by name on table's columns.
struct IndexDefinition {
	bool unique = false;
	std::string name;
	std::string table;
	std::vector<std::string> columns;
};

// ImportedCollection is one root collection of the file: its source, the table it goes to, its
// mapping (with child arrays) and its indexes.
struct ImportedCollection {
	std::string database;
	std::string collection;
	std::string table;
	Mapping mapping;
	std::vector<IndexDefinition> indexes;
};

// ImportConnectorMappings converts a whole mappings.json; it returns every collection or throws
// Error (22023 for shapes and impossible indices, 42703 for an unmapped pk, 0A000 for unsupported
// features) naming the database, collection, field or index at fault. Nothing is half-imported.
std::vector<ImportedCollection> ImportConnectorMappings(std::string_view json_text);
std::vector<ImportedCollection> ImportConnectorMappings(const Json &json);

// ParseIndexDefinition parses "[UNIQUE] INDEX name ON table(col, ...)" (keywords in any case,
// identifiers optionally double-quoted, unquoted ones folded to lowercase); anything else throws
// Error 22023.
IndexDefinition ParseIndexDefinition(std::string_view sql);

} // namespace mongo_river::mapping
