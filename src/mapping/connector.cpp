// connector.cpp: import mongo-connector-postgresql mappings.json files (format in connector.hpp).
#include <map>
#include <set>

#include "mongo_river/convert/types.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/connector.hpp"
#include "mongo_river/mapping/names.hpp"

namespace mongo_river::mapping {

namespace {

const char *const kFieldKeys[] = {"dest", "type", "fk", "index", "valueField"};
constexpr int kMaxNesting = 16;

// Fold lowercases ASCII letters, as PostgreSQL folds the tool's unquoted identifiers.
std::string Fold(std::string name) {
	for (char &c : name)
		c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
	return name;
}

// Upper uppercases ASCII letters, to compare the tool's special types (_ARRAY, ...).
std::string Upper(std::string name) {
	for (char &c : name)
		c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
	return name;
}

// IsIntegerOrSerial tells whether type is an integer type or one of the serial pseudo-types
// (SERIAL, BIGSERIAL, SMALLSERIAL, SERIAL2/4/8), which the tool used for generated keys.
bool IsIntegerOrSerial(const std::string &type) {
	std::string upper = Upper(type);
	for (const char *serial : {"SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"})
		if (upper == serial)
			return true;
	convert::TargetKind kind = convert::ClassifyType(type).kind;
	return kind == convert::TargetKind::kSmallint || kind == convert::TargetKind::kInteger ||
		   kind == convert::TargetKind::kBigint;
}

// Refuse builds an Error about one place of the file ("db.collection.field").
Error Refuse(const char *code, const std::string &where, const std::string &problem, const std::string &hint) {
	return Error(code, "cannot import mongo-connector mappings: " + where + " " + problem, {}, hint);
}

// Field is one field entry of a collection, read and checked.
struct Field {
	std::string name;
	std::string dest;
	std::string type;
	std::string fk;
	std::string value_field;
	bool index = false;
};

// Entry is one collection entry: pk, indices and fields in file order.
struct Entry {
	std::string where;
	std::string pk;
	std::vector<std::string> indices;
	std::vector<Field> fields;
};

// ReadField reads one field spec, refusing unknown keys and Python transforms.
Field ReadField(const std::string &name, const Json &spec, const std::string &where) {
	if (!spec.IsObject())
		throw Refuse(sqlstate::kInvalidParameterValue, where, "must be an object, not " + spec.TypeName(),
					 "A field is {\"dest\": column, \"type\": SQL type}.");
	Field field;
	field.name = name;
	for (const auto &[key, value] : spec.Members()) {
		if (key == "transform")
			throw Refuse(sqlstate::kFeatureNotSupported, where + ".transform",
						 "is Python code, which mongo_river does not run",
						 "Remove the transform; convert with a view or a generated column instead.");
		bool known = false;
		for (const char *allowed : kFieldKeys)
			known = known || key == allowed;
		if (!known)
			throw Refuse(sqlstate::kInvalidParameterValue, where + "." + key, "is not a known key",
						 "Allowed keys: \"dest\", \"type\", \"fk\", \"index\", \"valueField\".");
		if (key == "index") {
			if (!value.IsBool())
				throw Refuse(sqlstate::kInvalidParameterValue, where + ".index", "must be true or false",
							 "Write \"index\": true.");
			field.index = value.BoolValue();
			continue;
		}
		if (!value.IsString() || value.StringValue().empty())
			throw Refuse(sqlstate::kInvalidParameterValue, where + "." + key, "must be a non-empty string",
						 "Give a name or type as a string.");
		std::string text = value.StringValue();
		(key == "dest" ? field.dest : key == "type" ? field.type : key == "fk" ? field.fk : field.value_field) = text;
	}
	if (field.type.empty())
		throw Refuse(sqlstate::kInvalidParameterValue, where + ".type", "is missing",
					 "Give the column's SQL type, e.g. \"TEXT\".");
	field.dest = Fold(field.dest.empty() ? name : field.dest);
	field.fk = Fold(field.fk);
	field.value_field = Fold(field.value_field);
	std::string special = Upper(field.type);
	if ((special == "_ARRAY" || special == "_ARRAY_OF_SCALARS") && field.fk.empty())
		throw Refuse(sqlstate::kInvalidParameterValue, where + ".fk", "is missing",
					 "An array needs \"fk\": the child column that holds the parent's key.");
	if (special == "_ARRAY_OF_SCALARS" && field.value_field.empty())
		throw Refuse(sqlstate::kInvalidParameterValue, where + ".valueField", "is missing",
					 "An array of scalars needs \"valueField\": the child column that holds each element.");
	return field;
}

// ReadEntry reads one collection entry.
Entry ReadEntry(const Json &json, const std::string &where) {
	if (!json.IsObject())
		throw Refuse(sqlstate::kInvalidParameterValue, where, "must be an object, not " + json.TypeName(),
					 "A collection entry is {\"pk\": column, field: {...}, ...}.");
	Entry entry;
	entry.where = where;
	for (const auto &[key, value] : json.Members()) {
		if (key == "pk") {
			if (!value.IsString() || value.StringValue().empty())
				throw Refuse(sqlstate::kInvalidParameterValue, where + ".pk", "must be a non-empty string",
							 "Name the primary key column.");
			entry.pk = Fold(value.StringValue());
		} else if (key == "indices") {
			if (!value.IsArray())
				throw Refuse(sqlstate::kInvalidParameterValue, where + ".indices", "must be an array of strings",
							 "List index definitions such as \"INDEX name_idx ON table(column)\".");
			for (const Json &index : value.Elements()) {
				if (!index.IsString())
					throw Refuse(sqlstate::kInvalidParameterValue, where + ".indices", "must hold only strings",
								 "List index definitions such as \"INDEX name_idx ON table(column)\".");
				entry.indices.push_back(index.StringValue());
			}
		} else {
			entry.fields.push_back(ReadField(key, value, where + "." + key));
		}
	}
	if (entry.pk.empty())
		throw Refuse(sqlstate::kInvalidParameterValue, where + ".pk", "is missing", "Every entry needs \"pk\".");
	return entry;
}

// Importer turns the entries of one database into root collections with their child tables.
class Importer {
public:
	Importer(std::string database, std::map<std::string, Entry> entries)
		: database_(std::move(database)), entries_(std::move(entries)) {}

	// Root builds the ImportedCollection of a root entry and lists its and its children's "indices"
	// (where, SQL) for checking once the whole mapping is known.
	ImportedCollection Root(const std::string &collection, std::vector<std::pair<std::string, std::string>> *indices) {
		const Entry &entry = entries_.at(collection);
		indices_ = indices;
		ImportedCollection result;
		result.database = database_;
		result.collection = collection;
		result.table = DefaultIdentifier(collection);
		result.mapping.pk = entry.pk;
		for (const Field &field : entry.fields)
			AddField(field, entry, result.table, result.mapping.columns, result.mapping.arrays, result.indexes, 1);
		if (!FindColumn(result.mapping.columns, entry.pk))
			throw Refuse(sqlstate::kUndefinedColumn, entry.where + ".pk",
						 "names column \"" + entry.pk + "\", which no field maps",
						 "Map the document id to it: \"_id\": {\"dest\": \"" + entry.pk + "\", \"type\": \"TEXT\"}.");
		for (const std::string &index : entry.indices)
			indices->emplace_back(entry.where, index);
		indices_ = nullptr;
		return result;
	}

private:
	// AddField adds one field of an entry as a column or a child table.
	void AddField(const Field &field, const Entry &entry, const std::string &table, std::vector<Column> &columns,
				  std::vector<ArrayMapping> &arrays, std::vector<IndexDefinition> &indexes, int depth) {
		std::string special = Upper(field.type);
		std::string where = entry.where + "." + field.name;
		if (special == "_ARRAY" || special == "_ARRAY_OF_SCALARS") {
			if (depth > kMaxNesting)
				throw Refuse(sqlstate::kInvalidParameterValue, where, "nests arrays more than 16 levels deep",
							 "Check for an array whose dest leads back to an enclosing entry.");
			arrays.push_back(Child(field, entry, special == "_ARRAY_OF_SCALARS", indexes, depth));
			return;
		}
		Column column{field.dest, ParsePath(field.name), field.type, Format::kDefault};
		if (special == "_PRESENCE") {
			column.type = "boolean";
			column.format = Format::kPresence;
		}
		columns.push_back(column);
		if (field.index)
			indexes.push_back({false, "idx_" + table + "_" + field.dest, table, {field.dest}});
	}

	// Child builds the array mapping of an _ARRAY or _ARRAY_OF_SCALARS field from the child entry.
	ArrayMapping Child(const Field &field, const Entry &parent, bool scalars, std::vector<IndexDefinition> &indexes,
					   int depth) {
		std::string where = parent.where + "." + field.name;
		auto found = entries_.find(field.dest);
		if (found == entries_.end())
			for (auto it = entries_.begin(); it != entries_.end() && found == entries_.end(); ++it)
				if (Fold(it->first) == field.dest)
					found = it;
		if (found == entries_.end())
			throw Refuse(sqlstate::kInvalidParameterValue, where,
						 "is an array whose child entry \"" + field.dest + "\" is missing from database \"" +
							 database_ + "\"",
						 "Add an entry for \"" + field.dest + "\" describing the element fields.");
		const Entry &child = found->second;
		ArrayMapping array;
		array.name = DefaultIdentifier(field.name);
		array.path = ParsePath(field.name);
		array.table = DefaultIdentifier(found->first);
		array.fk = field.fk;
		bool pk_mapped = false;
		std::string key_type = "text";
		if (depth == 1)
			for (const Field &key : parent.fields)
				if (key.dest == parent.pk)
					key_type = key.type;
		for (const Field &element : child.fields) {
			if (element.dest == array.fk) {
				// Below the first level the parent's key is its generated text id; the tool keyed
				// that table with a SERIAL, so its files declare the fk SERIAL (or an integer): the
				// column still holds the parent's text id.
				bool generated_parent = depth > 1;
				if (convert::ClassifyType(element.type).kind != convert::ClassifyType(key_type).kind &&
					!(generated_parent && IsIntegerOrSerial(element.type)))
					throw Refuse(sqlstate::kDatatypeMismatch, child.where + "." + element.name,
								 "declares fk \"" + array.fk + "\" as " + element.type + " but the parent's key is " +
									 key_type,
								 "Give the fk column the type of the parent's key (nested arrays: TEXT).");
				continue;
			}
			if (scalars) {
				if (element.dest == field.value_field)
					array.columns.push_back({element.dest, {kElementKey}, element.type, Format::kDefault});
				else if (element.dest != child.pk)
					throw Refuse(sqlstate::kInvalidParameterValue, child.where + "." + element.name,
								 "cannot be mapped: the elements of " + where + " are scalars",
								 "A scalar array's entry maps only its valueField, fk and pk.");
				continue;
			}
			pk_mapped = pk_mapped || element.dest == child.pk;
			AddField(element, child, array.table, array.columns, array.arrays, indexes, depth + 1);
		}
		if (scalars && array.columns.empty())
			throw Refuse(sqlstate::kInvalidParameterValue, child.where,
						 "does not map valueField \"" + field.value_field + "\" of " + where,
						 "Add \"" + field.value_field + "\": {\"type\": ...} to the child entry.");
		if (!pk_mapped)
			array.id = child.pk;
		else if (!array.arrays.empty())
			throw Refuse(sqlstate::kFeatureNotSupported, child.where,
						 "maps its pk from an element field and also has arrays",
						 "Leave the child's pk unmapped so mongo_river generates it; nested arrays reference it.");
		for (const std::string &index : child.indices)
			indices_->emplace_back(child.where, index);
		for (const Field &element : child.fields)
			if (element.dest == array.fk && element.index)
				indexes.push_back({false, "idx_" + array.table + "_" + element.dest, array.table, {element.dest}});
		return array;
	}

	std::string database_;
	std::map<std::string, Entry> entries_;
	std::vector<std::pair<std::string, std::string>> *indices_ = nullptr;
};

// TableColumnsOf lists every table an imported collection creates with its column names.
std::map<std::string, std::set<std::string>> TableColumnsOf(const ImportedCollection &imported) {
	std::map<std::string, std::set<std::string>> tables;
	std::set<std::string> &root = tables[imported.table];
	for (const Column &column : imported.mapping.columns)
		root.insert(column.name);
	std::vector<const ArrayMapping *> stack;
	for (const ArrayMapping &array : imported.mapping.arrays)
		stack.push_back(&array);
	while (!stack.empty()) {
		const ArrayMapping *array = stack.back();
		stack.pop_back();
		std::set<std::string> &columns = tables[Fold(array->table)];
		columns.insert(array->fk);
		if (!array->id.empty())
			columns.insert(array->id);
		for (const Column &column : array->columns)
			columns.insert(column.name);
		for (const ArrayMapping &nested : array->arrays)
			stack.push_back(&nested);
	}
	return tables;
}

// CheckIndex returns why an index cannot be created for imported (empty when it can).
std::string CheckIndex(const IndexDefinition &index, const ImportedCollection &imported) {
	auto tables = TableColumnsOf(imported);
	std::string why;
	auto table = tables.find(index.table);
	std::set<std::string> known;
	if (table == tables.end()) {
		std::string created;
		for (const auto &[name, columns] : tables) {
			created += (created.empty() ? "" : ", ") + name;
			known.insert(columns.begin(), columns.end());
		}
		why = "table " + index.table + " is not created by the mapping (it creates " + created + ")";
	} else {
		known = table->second;
	}
	for (const std::string &column : index.columns)
		if (!known.count(column))
			why += (why.empty() ? "" : "; ") + std::string("column ") + column + " is not mapped";
	return why;
}

} // namespace

std::vector<ImportedCollection> ImportConnectorMappings(const Json &json) {
	if (!json.IsObject())
		throw Refuse(sqlstate::kInvalidParameterValue, "the file",
					 "must be an object of databases, not " + json.TypeName(),
					 "The file is {\"database\": {\"collection\": {...}}}.");
	std::vector<ImportedCollection> result;
	std::vector<std::string> problems;
	for (const auto &[database, collections] : json.Members()) {
		if (!collections.IsObject())
			throw Refuse(sqlstate::kInvalidParameterValue, database,
						 "must be an object of collections, not " + collections.TypeName(),
						 "The file is {\"database\": {\"collection\": {...}}}.");
		std::map<std::string, Entry> entries;
		std::vector<std::string> order;
		std::set<std::string> children;
		for (const auto &[collection, entry] : collections.Members()) {
			entries.emplace(collection, ReadEntry(entry, database + "." + collection));
			order.push_back(collection);
		}
		for (const auto &[name, entry] : entries)
			for (const Field &field : entry.fields)
				if (Upper(field.type) == "_ARRAY" || Upper(field.type) == "_ARRAY_OF_SCALARS")
					for (const auto &[other, unused] : entries)
						if (Fold(other) == field.dest)
							children.insert(other);
		if (!order.empty() && children.size() == order.size())
			throw Refuse(sqlstate::kInvalidParameterValue, database,
						 "has no root collection: every entry is an array's child",
						 "Check the \"dest\" of the _ARRAY fields; an array cannot lead back to its own collection.");
		Importer importer(database, entries);
		for (const std::string &collection : order) {
			if (children.count(collection))
				continue;
			std::vector<std::pair<std::string, std::string>> indices;
			ImportedCollection imported = importer.Root(collection, &indices);
			try {
				ValidateMapping(imported.mapping);
			} catch (const Error &e) {
				throw Error(e.Sqlstate(),
							"cannot import mongo-connector mappings: " + database + "." + collection + ": " +
								e.Message(),
							e.Detail(), e.Hint());
			}
			for (const auto &[where, sql] : indices) {
				IndexDefinition index = ParseIndexDefinition(sql);
				std::string why = CheckIndex(index, imported);
				if (why.empty())
					imported.indexes.push_back(index);
				else
					problems.push_back("index \"" + index.name + "\" of " + where + " (\"" + sql + "\"): " + why);
			}
			result.push_back(std::move(imported));
		}
	}
	if (!problems.empty()) {
		std::string detail;
		for (const std::string &problem : problems)
			detail += (detail.empty() ? "" : "\n") + problem;
		throw Error(sqlstate::kInvalidParameterValue, "cannot import mongo-connector mappings: " + problems.front(),
					detail,
					"Fix or remove these \"indices\" entries: mongo_river creates only the tables and columns the "
					"mapping declares, and nothing was imported.");
	}
	return result;
}

std::vector<ImportedCollection> ImportConnectorMappings(std::string_view json_text) {
	return ImportConnectorMappings(Json::Parse(json_text, "mongo-connector mappings"));
}

} // namespace mongo_river::mapping
