// batch_writer.cpp: multi-row statements for many documents at once (the copy, and stream batches
// reduced to each document's last change): one statement per table and chunk instead of one per row.
#include <algorithm>

#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
}

namespace mongo_river::apply {

namespace {

// kMaxParams keeps a statement under PostgreSQL's 65535 bind parameters; kMaxRows bounds its rows.
constexpr size_t kMaxParams = 60000;
constexpr size_t kMaxRows = 500;

// ArrayOf builds a one-dimensional array Datum of element type from values.
Datum ArrayOf(Oid element, const std::vector<Datum> &values) {
	return pg::Call([&] {
		int16 len;
		bool byval;
		char align;
		get_typlenbyvalalign(element, &len, &byval, &align);
		return PointerGetDatum(
			construct_array(const_cast<Datum *>(values.data()), int(values.size()), element, len, byval, align));
	});
}

} // namespace

void MappingWriter::InsertRows(size_t index, const std::vector<const std::vector<convert::Value> *> &rows) {
	Table &table = tables_[index];
	size_t columns = table.types.size();
	size_t per_statement = std::max<size_t>(1, std::min(kMaxRows, kMaxParams / std::max<size_t>(columns, 1)));
	for (size_t start = 0, count = 0; start < rows.size(); start += count) {
		count = StatementRows(rows.size() - start, per_statement);
		auto plan = table.multi_insert.find(count);
		if (plan == table.multi_insert.end()) {
			std::string sql = table.insert_head;
			std::vector<Oid> types;
			for (size_t r = 0; r < count; r++) {
				sql += r ? ", (" : "(";
				for (size_t c = 0; c < columns; c++)
					sql += (c ? ", $" : "$") + std::to_string(r * columns + c + 1);
				sql += ")";
				types.insert(types.end(), table.types.begin(), table.types.end());
			}
			// Generic from the start: the plan of a VALUES list does not depend on its values; a custom
			// plan would be planned again at each of its first runs and copy each value into itself.
			plan = table.multi_insert.emplace(count, pg::SpiPlan(sql + table.insert_tail, types, true)).first;
		}
		std::vector<Datum> values(count * columns);
		std::string nulls(count * columns, ' ');
		for (size_t r = 0; r < count; r++) {
			const std::vector<convert::Value> &row = *rows[start + r];
			for (size_t c = 0; c < columns; c++) {
				bool isnull = false;
				values[r * columns + c] = ToDatum(row[c], table.columns[c], &isnull);
				if (isnull)
					nulls[r * columns + c] = 'n';
			}
		}
		plan->second.Execute(values.data(), nulls.c_str());
	}
}

void MappingWriter::DeleteAny(size_t index, const std::vector<Datum> &keys) {
	if (keys.empty())
		return;
	Table &table = tables_[index];
	if (!table.delete_any.Valid()) {
		Oid array_type = pg::Call([&] { return get_array_type(table.key_type); });
		// Generic: a custom plan for a few hundred keys scans the whole table (see pg::SpiPlan).
		table.delete_any =
			pg::SpiPlan("DELETE FROM " + table.name + " WHERE " + table.key_quoted + " = ANY ($1)", {array_type}, true);
	}
	Datum array = ArrayOf(table.key_type, keys);
	table.delete_any.Execute(&array, " ");
}

void MappingWriter::UpsertBatch(const std::vector<const convert::ConvertedDocument *> &documents) {
	if (documents.empty())
		return;
	std::vector<const std::vector<convert::Value> *> roots;
	std::vector<Datum> keys;
	for (const convert::ConvertedDocument *document : documents) {
		roots.push_back(&document->row);
		bool isnull = false;
		keys.push_back(ToDatum(document->key, key_type_, &isnull));
	}
	InsertRows(0, roots);
	if (tables_.size() == 1)
		return;
	// Old child rows go first (nested ones with them: ON DELETE CASCADE), then the new ones.
	for (size_t i = 1; i < tables_.size(); i++)
		if (tables_[i].parent == 0)
			DeleteAny(i, keys);
	std::vector<std::vector<const std::vector<convert::Value> *>> children(tables_.size());
	for (const convert::ConvertedDocument *document : documents)
		for (const convert::ChildRows &child : document->children)
			for (const std::vector<convert::Value> &row : child.rows)
				children[child.table].push_back(&row);
	for (size_t i = 1; i < tables_.size(); i++)
		if (!children[i].empty())
			InsertRows(i, children[i]);
}

void MappingWriter::DeleteBatch(const std::vector<convert::Value> &keys) {
	std::vector<Datum> datums;
	for (const convert::Value &key : keys) {
		bool isnull = false;
		Datum datum = ToDatum(key, key_type_, &isnull);
		if (!isnull)
			datums.push_back(datum);
	}
	DeleteAny(0, datums);
}

void MappingWriter::RecordSeenBatch(const std::string &river, const std::vector<convert::Value> &keys) {
	if (keys.empty())
		return;
	std::vector<Datum> texts;
	for (const convert::Value &key : keys)
		texts.push_back(pg::TextDatum(convert::ValueText(key)));
	catalog::AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiExecute("INSERT INTO mongo_river.resync_seen (river, source, key) SELECT $1, $2, k FROM unnest($3) k"
				   " ON CONFLICT DO NOTHING",
				   {{NAMEOID, pg::NameDatum(river)},
					{TEXTOID, pg::TextDatum(row_.source)},
					{TEXTARRAYOID, ArrayOf(TEXTOID, texts)}});
}

} // namespace mongo_river::apply
