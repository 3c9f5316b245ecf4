// row.hpp: one BSON document -> the row of its table and the rows of its child tables (PG-free).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <bson/bson.h>

#include "mongo_river/convert/types.hpp"
#include "mongo_river/convert/update_plan.hpp"
#include "mongo_river/convert/convert.hpp"
#include "mongo_river/convert/value.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace mongo_river::convert {

enum class ColumnRole { kPrimaryKey, kColumn, kDocument, kForeignKey, kPosition, kGeneratedId };

// ColumnSpec is one column of a table the mapping fills, in row order.
struct ColumnSpec {
	std::string name;
	std::string type;
	ColumnRole role = ColumnRole::kColumn;
};

// TableLayout describes one table: the root (table empty: the mapping's target) or a child table of
// an array mapping. primary_key lists the key columns: the pk for the root; for a child its
// generated id, else (fk, position) when it has a position, else nothing. parent is the index of the
// parent table in the layout (-1 for the root); the fk column references the parent's key
// (the root's pk, or the parent child table's generated id).
struct TableLayout {
	std::string table;
	std::vector<ColumnSpec> columns;
	std::vector<std::string> primary_key;
	int parent = -1;
};

// ChildRows holds the rows one document gives a child table (index into the layout).
struct ChildRows {
	std::size_t table = 0;
	std::vector<std::vector<Value>> rows;
};

// ConvertedDocument is a document's rows; it may be applied only when errors is empty (otherwise
// the document goes to rejects with every error listed).
struct ConvertedDocument {
	Value key;
	std::vector<Value> row;
	std::vector<ChildRows> children;
	std::vector<ConversionError> errors;
};

// ConvertMappedValue converts the value found at a column's path (nullptr: missing) per the
// column's format, as Convert does for the column.
Value ConvertMappedValue(const mapping::Column &column, const TargetType &target, const bson_value_t *value,
						 const std::string &path);

// DocumentConverter converts documents by one mapping; build it once per mapping (it classifies
// every column type up front) and call Convert per document.
class DocumentConverter {
public:
	explicit DocumentConverter(mapping::Mapping mapping);
	// Copies are refused because the compiled columns point into mapping_; moves keep them valid.
	DocumentConverter(const DocumentConverter &) = delete;
	DocumentConverter &operator=(const DocumentConverter &) = delete;
	DocumentConverter(DocumentConverter &&) = default;
	DocumentConverter &operator=(DocumentConverter &&) = default;

	// Layout lists the tables in the order Convert fills them: [0] the root, then each array mapping
	// depth-first (a nested one right after its parent).
	const std::vector<TableLayout> &Layout() const { return layout_; }
	const mapping::Mapping &Mapping() const { return mapping_; }

	// Convert converts one document: the root row (columns in layout order: the mapping's columns,
	// then the document column), one ChildRows per child table (possibly without rows), and every
	// conversion error met, each naming its path, BSON type and column.
	ConvertedDocument Convert(const bson_t &document) const;
	// ConvertInto is Convert into *out, whose vectors keep their storage (no allocation per document
	// when out is reused for document after document).
	void ConvertInto(const bson_t &document, ConvertedDocument *out) const;
	// PlanUpdate returns the root row's columns an update changes, or why the whole document is
	// needed (see update_plan.hpp).
	UpdatePlan PlanUpdate(const UpdateChanges &changes) const;

	// Retarget converts column `column` of layout table `table` to type (a PostgreSQL type name)
	// rather than to the type the mapping names: the writer knows, from the catalog, that a domain is
	// over an array ("text[]"), which the name alone does not say. False when no such column.
	bool Retarget(std::size_t table, const std::string &column, const std::string &type);

private:
	struct CompiledColumn {
		const mapping::Column *column;
		TargetType target;
		std::string path;
		std::size_t top = 0; // the index of its path's first key in top_keys_
	};
	struct CompiledArray {
		const mapping::ArrayMapping *array;
		std::size_t table;
		std::vector<CompiledColumn> columns;
		std::vector<CompiledArray> children;
	};

	void CompileArrays(const std::vector<mapping::ArrayMapping> &arrays, int parent, const std::string &fk_type,
					   std::vector<CompiledArray> *out);
	void ConvertArray(const CompiledArray &array, const bson_t &container, const std::string &parent_path,
					  const Value &parent_key, ConvertedDocument *result) const;
	// ConvertElement adds the row of one array element and recurses into its nested arrays.
	void ConvertElement(const CompiledArray &array, const bson_value_t &element, const std::string &path,
						const Value &parent_key, std::size_t index, ConvertedDocument *result) const;

	mapping::Mapping mapping_;
	std::vector<TableLayout> layout_;
	std::vector<CompiledColumn> columns_;
	TopKeys top_keys_{{}}; // the root columns' first keys, found in one pass per document
	std::vector<CompiledArray> arrays_;
	std::size_t pk_index_ = 0;
};

} // namespace mongo_river::convert
