// patch_writer.cpp: updates applied in place from their update descriptions: only the root-row
// columns an update changed are written, with one UPDATE ... FROM unnest(<an array per column>) per
// set of changed columns and chunk of rows (UPDATE ... FROM (VALUES ...) when a column's type is an
// array or has none); the rows' other columns and child rows are left as they are.
#include <algorithm>
#include <memory>

#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/convert/row.hpp"
#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace mongo_river::apply {

namespace {

// kMaxPatchParams keeps a statement under PostgreSQL's 65535 bind parameters; kMaxPatchRows bounds its rows.
constexpr std::size_t kMaxPatchParams = 60000;
constexpr std::size_t kMaxPatchRows = 500;

// ColumnSetKey names a set of column indexes (for the plan cache and grouping).
std::string ColumnSetKey(const std::vector<std::size_t> &columns) {
	std::string key;
	for (std::size_t c : columns)
		key += std::to_string(c) + ",";
	return key;
}

// PatchValue is the value a patch sets for root column `column` (every patch of a group sets the
// group's columns; the last entry of a column wins, as when the patch was built).
const convert::Value &PatchValue(const std::vector<std::pair<std::size_t, convert::Value>> &columns,
								 std::size_t column) {
	const convert::Value *found = nullptr;
	for (const auto &[index, value] : columns)
		if (index == column)
			found = &value;
	if (!found)
		throw Error(sqlstate::kInternalError, "mongo_river: a patch of a group does not set one of its columns");
	return *found;
}

} // namespace

Datum MappingWriter::ArrayOfKeys(const std::vector<Datum> &keys) const {
	return pg::Call([&] {
		int16 len;
		bool byval;
		char align;
		get_typlenbyvalalign(key_type_.type, &len, &byval, &align);
		return PointerGetDatum(
			construct_array(const_cast<Datum *>(keys.data()), int(keys.size()), key_type_.type, len, byval, align));
	});
}

const pg::SpiPlan *MappingWriter::UnnestPlan(const std::vector<std::size_t> &columns) {
	const std::string key = ColumnSetKey(columns);
	auto found = unnest_plans_.find(key);
	if (found != unnest_plans_.end())
		return found->second.Valid() ? &found->second : nullptr;
	Table &root = tables_[0];
	const convert::TableLayout &layout = converter_.Layout()[0];
	std::vector<Oid> types;
	auto add = [&](const ColumnType &type) {
		const Oid array = pg::Call([&] { return get_array_type(type.type); });
		// An array, or a domain over one (its Datums are built as arrays: ColumnType::element).
		types.push_back(OidIsValid(type.element) ? InvalidOid : array);
		return OidIsValid(types.back());
	};
	bool usable = add(key_type_);
	std::string names = "k";
	std::string sets;
	for (std::size_t i = 0; usable && i < columns.size(); i++) {
		usable = add(root.columns[columns[i]]);
		std::string quoted = pg::Call([&] { return quote_identifier(layout.columns[columns[i]].name.c_str()); });
		names += ", c" + std::to_string(i);
		sets += (i ? ", " : "") + quoted + " = v.c" + std::to_string(i);
	}
	if (!usable) {
		unnest_plans_.emplace(key, pg::SpiPlan());
		return nullptr;
	}
	std::string params;
	for (std::size_t i = 0; i < types.size(); i++)
		params += (i ? ", $" : "$") + std::to_string(i + 1);
	// A nested loop of index probes, one per row, as ON CONFLICT would (the VALUES statement hashed
	// its list and probed the keys as an array: 22 % slower for 500 rows of a 100k-row table).
	const std::string from = "unnest(" + params + ") v(" + names + ") WHERE t." + key_column_ + " = v.k";
	const std::string sql = columns.empty() ? "SELECT 1 FROM " + root.name + " t, " + from
											: "UPDATE " + root.name + " t SET " + sets + " FROM " + from;
	return &unnest_plans_.emplace(key, pg::SpiPlan(sql, types, true)).first->second;
}

bool MappingWriter::UnnestChunk(const std::vector<std::size_t> &columns, const std::vector<RowPatch> &patches,
								const std::vector<std::size_t> &members, std::size_t first, std::size_t count,
								uint64 *found) {
	const pg::SpiPlan *plan = UnnestPlan(columns);
	if (!plan)
		return false;
	Table &root = tables_[0];
	std::vector<const ColumnType *> types{&key_type_};
	for (std::size_t c : columns)
		types.push_back(&root.columns[c]);
	std::vector<Datum> arrays(types.size());
	std::vector<Datum> elements(count);
	std::unique_ptr<bool[]> nulls(new bool[count]);
	for (std::size_t t = 0; t < types.size(); t++) {
		for (std::size_t r = 0; r < count; r++) {
			const RowPatch &patch = patches[members[first + r]];
			const convert::Value &value = t == 0 ? *patch.key : PatchValue(*patch.columns, columns[t - 1]);
			bool isnull = false;
			elements[r] = ToDatum(value, *types[t], &isnull);
			nulls[r] = isnull;
		}
		arrays[t] = pg::Call([&] {
			int16 len;
			bool byval;
			char align;
			get_typlenbyvalalign(types[t]->type, &len, &byval, &align);
			int dims[1] = {int(count)};
			int lbs[1] = {1};
			return PointerGetDatum(
				construct_md_array(elements.data(), nulls.get(), 1, dims, lbs, types[t]->type, len, byval, align));
		});
	}
	*found = plan->Execute(arrays.data(), std::string(arrays.size(), ' ').c_str());
	return true;
}

uint64 MappingWriter::PatchChunk(const std::vector<std::size_t> &columns, const std::vector<RowPatch> &patches,
								 const std::vector<std::size_t> &members, std::size_t first, std::size_t count) {
	uint64 found = 0;
	if (UnnestChunk(columns, patches, members, first, count, &found))
		return found;
	Table &root = tables_[0];
	const convert::TableLayout &layout = converter_.Layout()[0];
	const std::size_t width = columns.size() + 1;
	const std::string plan_key = ColumnSetKey(columns) + "x" + std::to_string(count);
	auto plan = patch_plans_.find(plan_key);
	if (plan == patch_plans_.end()) {
		std::string values;
		std::vector<Oid> types;
		for (std::size_t r = 0; r < count; r++) {
			values += r ? ", (" : "(";
			for (std::size_t c = 0; c < width; c++)
				values += (c ? ", $" : "$") + std::to_string(r * width + c + 1);
			values += ")";
			types.push_back(key_type_.type);
			for (std::size_t c : columns)
				types.push_back(root.columns[c].type);
		}
		std::string names = "k";
		std::string sets;
		for (std::size_t i = 0; i < columns.size(); i++) {
			std::string quoted = pg::Call([&] { return quote_identifier(layout.columns[columns[i]].name.c_str()); });
			names += ", c" + std::to_string(i);
			sets += (i ? ", " : "") + quoted + " = v.c" + std::to_string(i);
		}
		std::string sql = columns.empty() ? "SELECT 1 FROM " + root.name + " t, (VALUES " + values + ") v(" + names +
												") WHERE t." + key_column_ + " = v.k"
										  : "UPDATE " + root.name + " t SET " + sets + " FROM (VALUES " + values +
												") v(" + names + ") WHERE t." + key_column_ + " = v.k";
		// The keys again as an array: t.key = ANY($n) lets the generic plan find the rows by index.
		// (Joined to a VALUES list of a few hundred rows alone, PostgreSQL hashes the list and scans
		// the whole table: 12-20 ms per 500 rows of a 50k-row table, against 2 ms by index.)
		const Oid array_type = pg::Call([&] { return get_array_type(key_type_.type); });
		if (OidIsValid(array_type)) {
			types.push_back(array_type);
			sql += " AND t." + key_column_ + " = ANY ($" + std::to_string(types.size()) + ")";
		}
		plan =
			patch_plans_
				.emplace(plan_key, PatchPlan{pg::SpiPlan(sql, types, OidIsValid(array_type)), OidIsValid(array_type)})
				.first;
	}
	std::vector<Datum> values(count * width);
	std::string nulls(count * width, ' ');
	for (std::size_t r = 0; r < count; r++) {
		const RowPatch &patch = patches[members[first + r]];
		bool isnull = false;
		values[r * width] = ToDatum(*patch.key, key_type_, &isnull);
		if (isnull)
			nulls[r * width] = 'n';
		for (std::size_t i = 0; i < columns.size(); i++) {
			values[r * width + i + 1] =
				ToDatum(PatchValue(*patch.columns, columns[i]), root.columns[columns[i]], &isnull);
			if (isnull)
				nulls[r * width + i + 1] = 'n';
		}
	}
	if (plan->second.keys_array) {
		std::vector<Datum> keys;
		for (std::size_t r = 0; r < count; r++)
			if (nulls[r * width] == ' ')
				keys.push_back(values[r * width]);
		values.push_back(ArrayOfKeys(keys));
		nulls.push_back(' ');
	}
	return plan->second.plan.Execute(values.data(), nulls.c_str());
}

std::vector<std::size_t> MappingWriter::PatchRows(const std::vector<RowPatch> &patches) {
	// Patches with the same changed columns share statements.
	std::map<std::vector<std::size_t>, std::vector<std::size_t>> groups;
	for (std::size_t p = 0; p < patches.size(); p++) {
		std::vector<std::size_t> columns;
		for (const auto &[index, value] : *patches[p].columns)
			columns.push_back(index);
		std::sort(columns.begin(), columns.end());
		columns.erase(std::unique(columns.begin(), columns.end()), columns.end());
		groups[columns].push_back(p);
	}
	std::vector<std::size_t> missing;
	for (const auto &[columns, members] : groups) {
		const std::size_t width = columns.size() + 1;
		const std::size_t per_statement = std::max<std::size_t>(1, std::min(kMaxPatchRows, kMaxPatchParams / width));
		for (std::size_t first = 0, count = 0; first < members.size(); first += count) {
			count = StatementRows(members.size() - first, per_statement);
			if (PatchChunk(columns, patches, members, first, count) == count)
				continue;
			// Some key of the chunk has no row: find which, one by one (patching a row twice with
			// the same values changes nothing).
			for (std::size_t r = first; r < first + count; r++)
				if (PatchChunk(columns, patches, members, r, 1) == 0)
					missing.push_back(members[r]);
		}
	}
	std::sort(missing.begin(), missing.end());
	return missing;
}

bool MappingWriter::PatchVersion(const convert::Value &key,
								 const std::vector<std::pair<std::size_t, convert::Value>> &columns,
								 const ChangeInfo &change) {
	Table &root = tables_[0];
	const convert::TableLayout &layout = converter_.Layout()[0];
	std::vector<std::size_t> changed;
	for (const auto &[index, value] : columns)
		changed.push_back(index);
	const std::string plan_key = "history:" + ColumnSetKey(changed);
	auto plan = patch_plans_.find(plan_key);
	if (plan == patch_plans_.end()) {
		std::vector<Oid> types{key_type_.type};
		std::string names, values, latest;
		for (std::size_t c = 0; c < layout.columns.size(); c++) {
			std::string quoted = pg::Call([&] { return quote_identifier(layout.columns[c].name.c_str()); });
			names += quoted + ", ";
			latest += quoted + ", ";
			auto found = std::find(changed.begin(), changed.end(), c);
			if (found != changed.end()) {
				types.push_back(root.columns[c].type);
				values += "$" + std::to_string(types.size()) + ", ";
			} else {
				values += "l." + quoted + ", ";
			}
		}
		const std::size_t n = types.size();
		types.insert(types.end(), {TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID});
		std::string sql = "INSERT INTO " + root.name + " (" + names +
						  "_operation, _cluster_time, _source_time, _position) SELECT " + values + "$" +
						  std::to_string(n + 1) + ", $" + std::to_string(n + 2) + ", $" + std::to_string(n + 3) +
						  ", $" + std::to_string(n + 4) + " FROM (SELECT " + latest + "_operation FROM " + root.name +
						  " WHERE " + key_column_ + " = $1 ORDER BY _cluster_time DESC, _position DESC LIMIT 1) l" +
						  " WHERE l._operation <> 'delete' ON CONFLICT (_position) DO NOTHING";
		plan = patch_plans_.emplace(plan_key, PatchPlan{pg::SpiPlan(sql, types), false}).first;
	}
	std::vector<Datum> values;
	std::string nulls;
	bool isnull = false;
	values.push_back(ToDatum(key, key_type_, &isnull));
	nulls.push_back(isnull ? 'n' : ' ');
	for (std::size_t c : changed) {
		const convert::Value *value = nullptr;
		for (const auto &[index, v] : columns)
			if (index == c)
				value = &v;
		values.push_back(ToDatum(*value, root.columns[c], &isnull));
		nulls.push_back(isnull ? 'n' : ' ');
	}
	values.push_back(pg::Call([&] { return CStringGetTextDatum(change.operation.c_str()); }));
	nulls.push_back(' ');
	values.push_back(Int64GetDatum(int64(change.cluster_time)));
	nulls.push_back(' ');
	values.push_back(change.wall_ms ? TimestampTzGetDatum(time_t_to_timestamptz(0) + *change.wall_ms * 1000) : 0);
	nulls.push_back(change.wall_ms ? ' ' : 'n');
	values.push_back(pg::Call([&] { return CStringGetTextDatum(change.position.c_str()); }));
	nulls.push_back(' ');
	return plan->second.plan.Execute(values.data(), nulls.c_str()) == 1;
}

} // namespace mongo_river::apply
