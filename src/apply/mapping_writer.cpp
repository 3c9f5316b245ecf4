// mapping_writer.cpp: SPI statements that write one mapping's rows.
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/apply/mapping_writer.hpp"

#include "mongo_river/convert/convert.hpp"
#include "mongo_river/convert/types.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/mapping.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace mongo_river::apply {

namespace {

// QualifiedName returns relation's schema-qualified, quoted name.
std::string QualifiedName(Oid relation) {
	return pg::Call([&] {
		char *relname = get_rel_name(relation);
		if (!relname)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE), errmsg("mapped table with OID %u does not exist", relation),
					 errhint("It was dropped; unmap the collection or map it again.")));
		return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relation)), relname);
	});
}

std::string Quote(const std::string &identifier) {
	return pg::Call([&] { return quote_identifier(identifier.c_str()); });
}

// ChildRelation finds the table an array mapping names ('[schema.]table', schema defaulting to the
// target's).
Oid ChildRelation(const std::string &table, Oid target) {
	mapping::Target name = mapping::ParseTarget(table);
	return pg::Call([&] {
		Oid namespace_oid =
			name.schema.empty() ? get_rel_namespace(target) : get_namespace_oid(name.schema.c_str(), false);
		Oid relation = get_relname_relid(name.table.c_str(), namespace_oid);
		if (!OidIsValid(relation))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE), errmsg("child table \"%s\" does not exist", table.c_str()),
					 errhint("It was dropped; map the collection again.")));
		return relation;
	});
}

} // namespace

MappingWriter::MappingWriter(const catalog::MappingRow &row)
	: row_(row), converter_(mapping::ParseMapping(row.mapping_json)) {
	const auto &layout = converter_.Layout();
	tables_.resize(layout.size());
	for (size_t i = 0; i < layout.size(); i++)
		PrepareTable(i, i == 0 ? row.target : ChildRelation(layout[i].table, row.target));
	// A column whose type is a domain over an array takes arrays: the catalog says so, not its name.
	for (size_t i = 0; i < layout.size(); i++)
		for (size_t c = 0; c < layout[i].columns.size(); c++) {
			const std::string array_type = DomainArrayType(tables_[i].columns[c]);
			if (!array_type.empty())
				converter_.Retarget(i, layout[i].columns[c].name, array_type);
		}
	key_type_ = tables_[0].columns[0];
	for (size_t c = 0; c < layout[0].columns.size(); c++)
		if (layout[0].columns[c].role == convert::ColumnRole::kPrimaryKey) {
			key_type_ = tables_[0].columns[c];
			key_column_ = Quote(layout[0].columns[c].name);
		}
	key_type_name_ = pg::Call([&] { return format_type_with_typemod(key_type_.type, key_type_.typmod); });
}

void MappingWriter::RecordSeen(const std::string &river, const convert::Value &key) {
	catalog::AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiExecute(
		"INSERT INTO mongo_river.resync_seen (river, source, key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		{{NAMEOID, pg::NameDatum(river)},
		 {TEXTOID, pg::TextDatum(row_.source)},
		 {TEXTOID, pg::TextDatum(convert::ValueText(key))}});
}

uint64 MappingWriter::DeleteUnseen(const std::string &river, uint64 cluster_time) {
	if (History()) {
		// A history keeps every version: documents gone at the source get a 'delete' version.
		uint64 deleted = pg::SpiExecute(
			"INSERT INTO " + tables_[0].name + " (" + key_column_ + ", _operation, _cluster_time, _position)" +
				" SELECT l." + key_column_ + ", 'delete', $3, 'resync:' || $3 || ':' || l." + key_column_ + "::text" +
				" FROM (SELECT DISTINCT ON (" + key_column_ + ") " + key_column_ + ", _operation FROM " +
				tables_[0].name + " ORDER BY " + key_column_ + ", _cluster_time DESC, _position DESC) l" +
				" WHERE l._operation <> 'delete' AND NOT EXISTS (SELECT 1 FROM mongo_river.resync_seen s" +
				" WHERE s.river = $1 AND s.source = $2 AND s.key::" + key_type_name_ + " = l." + key_column_ +
				") ON CONFLICT (_position) DO NOTHING",
			{{NAMEOID, pg::NameDatum(river)},
			 {TEXTOID, pg::TextDatum(row_.source)},
			 {INT8OID, Int64GetDatum(int64(cluster_time))}});
		catalog::AsCatalogOwner as_catalog_owner; // secrets
		pg::SpiExecute("DELETE FROM mongo_river.resync_seen WHERE river = $1 AND source = $2",
					   {{NAMEOID, pg::NameDatum(river)}, {TEXTOID, pg::TextDatum(row_.source)}});
		return deleted;
	}
	uint64 deleted = pg::SpiExecute("DELETE FROM " + tables_[0].name +
										" t WHERE NOT EXISTS (SELECT 1 FROM mongo_river.resync_seen s"
										" WHERE s.river = $1 AND s.source = $2 AND s.key::" +
										key_type_name_ + " = t." + key_column_ + ")",
									{{NAMEOID, pg::NameDatum(river)}, {TEXTOID, pg::TextDatum(row_.source)}});
	catalog::AsCatalogOwner as_catalog_owner; // secrets
	pg::SpiExecute("DELETE FROM mongo_river.resync_seen WHERE river = $1 AND source = $2",
				   {{NAMEOID, pg::NameDatum(river)}, {TEXTOID, pg::TextDatum(row_.source)}});
	return deleted;
}

void MappingWriter::PrepareTable(size_t index, Oid relation) {
	const convert::TableLayout &layout = converter_.Layout()[index];
	Table &table = tables_[index];
	table.relation = relation;
	table.name = QualifiedName(relation);
	table.parent = layout.parent;
	std::string columns, params, updates, key_column;
	std::vector<Oid> types;
	for (size_t c = 0; c < layout.columns.size(); c++) {
		const convert::ColumnSpec &spec = layout.columns[c];
		table.columns.push_back(LookupColumnType(relation, spec.name));
		types.push_back(table.columns.back().type);
		std::string quoted = Quote(spec.name);
		columns += (c ? ", " : "") + quoted;
		params += (c ? ", $" : "$") + std::to_string(c + 1);
		if (spec.role == convert::ColumnRole::kPrimaryKey)
			key_column = quoted;
		else if (spec.role != convert::ColumnRole::kForeignKey && spec.role != convert::ColumnRole::kPosition &&
				 spec.role != convert::ColumnRole::kGeneratedId)
			updates += (updates.empty() ? "" : ", ") + quoted + " = EXCLUDED." + quoted;
		if (index > 0 && spec.role == convert::ColumnRole::kForeignKey && layout.parent == 0)
			table.delete_by_key =
				pg::SpiPlan("DELETE FROM " + table.name + " WHERE " + quoted + " = $1", {table.columns.back().type});
	}
	std::string sql = "INSERT INTO " + table.name + " (" + columns + ") VALUES (" + params + ")";
	table.types = types;
	table.insert_head = "INSERT INTO " + table.name + " (" + columns + ") VALUES ";
	if (index == 0 && !History())
		table.insert_tail =
			" ON CONFLICT (" + key_column + ") DO " + (updates.empty() ? "NOTHING" : "UPDATE SET " + updates);
	for (size_t c = 0; c < layout.columns.size(); c++) {
		bool is_key = index == 0 ? layout.columns[c].role == convert::ColumnRole::kPrimaryKey
								 : layout.columns[c].role == convert::ColumnRole::kForeignKey && layout.parent == 0;
		if (is_key) {
			table.key_quoted = Quote(layout.columns[c].name);
			table.key_type = table.columns[c].type;
		}
	}
	if (index == 0 && History()) {
		// History: every change is a new row; the change's position makes a replay a no-op.
		sql = "INSERT INTO " + table.name + " (" + columns + ", _operation, _cluster_time, _source_time, _position)" +
			  " VALUES (" + params + ", $" + std::to_string(layout.columns.size() + 1) + ", $" +
			  std::to_string(layout.columns.size() + 2) + ", $" + std::to_string(layout.columns.size() + 3) + ", $" +
			  std::to_string(layout.columns.size() + 4) + ") ON CONFLICT (_position) DO NOTHING";
		types.insert(types.end(), {TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID});
		Oid key_type = InvalidOid;
		for (size_t c = 0; c < layout.columns.size(); c++)
			if (layout.columns[c].role == convert::ColumnRole::kPrimaryKey) {
				key_type = table.columns[c].type;
				key_column = Quote(layout.columns[c].name);
			}
		table.delete_by_key = pg::SpiPlan("INSERT INTO " + table.name + " (" + key_column +
											  ", _operation, _cluster_time, _source_time, _position)"
											  " VALUES ($1, 'delete', $2, $3, $4) ON CONFLICT (_position) DO NOTHING",
										  {key_type, INT8OID, TIMESTAMPTZOID, TEXTOID});
		table.bare_version = pg::SpiPlan("INSERT INTO " + table.name + " (" + key_column +
											 ", _operation, _cluster_time, _source_time, _position)"
											 " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (_position) DO NOTHING",
										 {key_type, TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID});
	} else if (index == 0) {
		sql += " ON CONFLICT (" + key_column + ") DO " + (updates.empty() ? "NOTHING" : "UPDATE SET " + updates);
		Oid key_type = InvalidOid;
		for (size_t c = 0; c < layout.columns.size(); c++)
			if (layout.columns[c].role == convert::ColumnRole::kPrimaryKey)
				key_type = table.columns[c].type;
		table.delete_by_key = pg::SpiPlan("DELETE FROM " + table.name + " WHERE " + key_column + " = $1", {key_type});
	}
	table.insert = pg::SpiPlan(sql, types);
}

void MappingWriter::Execute(const Table &, const pg::SpiPlan &plan, const std::vector<convert::Value> &row,
							const std::vector<ColumnType> &types) {
	std::vector<Datum> values(row.size());
	std::string nulls(row.size(), ' ');
	for (size_t i = 0; i < row.size(); i++) {
		bool isnull = false;
		values[i] = ToDatum(row[i], types[i], &isnull);
		if (isnull)
			nulls[i] = 'n';
	}
	plan.Execute(values.data(), nulls.c_str());
}

namespace {

// ChangeDatums appends a change's operation, cluster time, wallTime and position as Datums.
void ChangeDatums(const ChangeInfo &change, std::vector<Datum> *values, std::string *nulls, bool with_operation) {
	if (with_operation) {
		values->push_back(pg::TextDatum(change.operation));
		nulls->push_back(' ');
	}
	values->push_back(Int64GetDatum(int64(change.cluster_time)));
	nulls->push_back(' ');
	values->push_back(change.wall_ms ? TimestampTzGetDatum(time_t_to_timestamptz(0) + *change.wall_ms * 1000) : 0);
	nulls->push_back(change.wall_ms ? ' ' : 'n');
	values->push_back(pg::TextDatum(change.position));
	nulls->push_back(' ');
}

} // namespace

void MappingWriter::Upsert(const convert::ConvertedDocument &document, const ChangeInfo &change) {
	if (History()) {
		std::vector<Datum> values(document.row.size());
		std::string nulls(document.row.size(), ' ');
		for (size_t i = 0; i < document.row.size(); i++) {
			bool isnull = false;
			values[i] = ToDatum(document.row[i], tables_[0].columns[i], &isnull);
			if (isnull)
				nulls[i] = 'n';
		}
		ChangeDatums(change, &values, &nulls, true);
		tables_[0].insert.Execute(values.data(), nulls.c_str());
		return;
	}
	Execute(tables_[0], tables_[0].insert, document.row, tables_[0].columns);
	if (tables_.size() == 1)
		return;
	bool isnull = false;
	Datum key = ToDatum(document.key, key_type_, &isnull);
	for (size_t i = 1; i < tables_.size(); i++)
		if (tables_[i].parent == 0)
			tables_[i].delete_by_key.Execute(&key, " ");
	for (const convert::ChildRows &child : document.children)
		for (const std::vector<convert::Value> &row : child.rows)
			Execute(tables_[child.table], tables_[child.table].insert, row, tables_[child.table].columns);
}

void MappingWriter::Delete(const convert::Value &key, const ChangeInfo &change) {
	bool isnull = false;
	Datum datum = ToDatum(key, key_type_, &isnull);
	if (isnull)
		return;
	if (!History()) {
		tables_[0].delete_by_key.Execute(&datum, " ");
		return;
	}
	std::vector<Datum> values{datum};
	std::string nulls = " ";
	ChangeDatums(change, &values, &nulls, false);
	tables_[0].delete_by_key.Execute(values.data(), nulls.c_str());
}

void MappingWriter::AppendBareVersion(const convert::Value &key, const ChangeInfo &change) {
	bool isnull = false;
	Datum datum = ToDatum(key, key_type_, &isnull);
	if (isnull || !History())
		return;
	std::vector<Datum> values{datum};
	std::string nulls = " ";
	ChangeDatums(change, &values, &nulls, true);
	tables_[0].bare_version.Execute(values.data(), nulls.c_str());
}

convert::Value MappingWriter::KeyFromId(const bson_value_t *id) const {
	const mapping::Mapping &mapping = converter_.Mapping();
	const mapping::Column *pk = mapping::FindColumn(mapping.columns, mapping.pk);
	return convert::ConvertPrimaryKey(id, *pk, convert::ClassifyType(pk->type), "_id");
}

} // namespace mongo_river::apply
