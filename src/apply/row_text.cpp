// row_text.cpp: rows as text, to compare what a document gives with what is stored (verify).
#include <algorithm>

#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/transaction.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

namespace mongo_river::apply {

namespace {

constexpr char kColumnSeparator = '\x1f';
constexpr char kRowSeparator = '\x1e';
constexpr const char *kNull = "\\N";

// OutputText renders one Datum with its type's output function.
std::string OutputText(Oid type, Datum value) {
	char *text = pg::Call([&] {
		Oid output;
		bool varlena;
		getTypeOutputInfo(type, &output, &varlena);
		return OidOutputFunctionCall(output, value);
	});
	std::string result(text);
	pfree(text);
	return result;
}

// JoinRows sorts rows (so that their order does not matter) and joins them.
std::string JoinRows(std::vector<std::string> rows) {
	std::sort(rows.begin(), rows.end());
	std::string out;
	for (const std::string &row : rows)
		out += row + kRowSeparator;
	return out;
}

} // namespace

std::string MappingWriter::RowText(const std::vector<ColumnType> &types, const std::vector<Datum> &values,
								   const std::vector<bool> &nulls) {
	std::string out;
	for (size_t i = 0; i < values.size(); i++) {
		if (i)
			out += kColumnSeparator;
		out += nulls[i] ? std::string(kNull) : OutputText(types[i].type, values[i]);
	}
	return out;
}

void MappingWriter::PrepareSelect(size_t index) {
	Table &table = tables_[index];
	if (table.select_by_key.Valid())
		return;
	const convert::TableLayout &layout = converter_.Layout()[index];
	std::string columns, where;
	Oid key_type = InvalidOid;
	for (size_t c = 0; c < layout.columns.size(); c++) {
		const convert::ColumnSpec &spec = layout.columns[c];
		std::string quoted = pg::Call([&] { return quote_identifier(spec.name.c_str()); });
		columns += (c ? ", " : "") + quoted;
		if (index == 0 && spec.role == convert::ColumnRole::kPrimaryKey) {
			where = quoted + " = $1";
			key_type = table.columns[c].type;
		} else if (index > 0 && spec.role == convert::ColumnRole::kForeignKey) {
			// A top-level array's rows hold the document's key; a nested array's rows hold a
			// generated id "<key>.<index>...".
			where = layout.parent == 0 ? quoted + "::text = $1" : "starts_with(" + quoted + "::text, $1 || '.')";
			key_type = TEXTOID;
		}
	}
	table.select_by_key = pg::SpiPlan("SELECT " + columns + " FROM " + table.name + " WHERE " + where, {key_type});
}

std::string MappingWriter::DocumentText(const convert::ConvertedDocument &document) {
	std::string out;
	auto datums = [](const std::vector<convert::Value> &row, const std::vector<ColumnType> &types,
					 std::vector<Datum> *values, std::vector<bool> *nulls) {
		values->resize(row.size());
		nulls->resize(row.size());
		for (size_t i = 0; i < row.size(); i++) {
			bool isnull = false;
			(*values)[i] = ToDatum(row[i], types[i], &isnull);
			(*nulls)[i] = isnull;
		}
	};
	std::vector<Datum> values;
	std::vector<bool> nulls;
	datums(document.row, tables_[0].columns, &values, &nulls);
	out = RowText(tables_[0].columns, values, nulls) + kRowSeparator;
	std::vector<std::vector<std::string>> children(tables_.size());
	for (const convert::ChildRows &child : document.children)
		for (const std::vector<convert::Value> &row : child.rows) {
			datums(row, tables_[child.table].columns, &values, &nulls);
			children[child.table].push_back(RowText(tables_[child.table].columns, values, nulls));
		}
	for (size_t i = 1; i < tables_.size(); i++)
		out += JoinRows(children[i]) + kRowSeparator;
	return out;
}

std::optional<std::string> MappingWriter::StoredText(const convert::Value &key) {
	bool isnull = false;
	Datum key_datum = ToDatum(key, key_type_, &isnull);
	std::string key_text = convert::ValueText(key);
	std::string out;
	for (size_t i = 0; i < tables_.size(); i++) {
		PrepareSelect(i);
		Datum arg = i == 0 ? key_datum : pg::TextDatum(key_text);
		uint64 rows = tables_[i].select_by_key.Execute(&arg, " ", true);
		if (i == 0 && rows == 0)
			return std::nullopt;
		std::vector<std::string> texts;
		for (uint64 r = 0; r < rows; r++) {
			std::vector<Datum> values(tables_[i].columns.size());
			std::vector<bool> nulls(values.size());
			for (size_t c = 0; c < values.size(); c++) {
				std::optional<Datum> value = pg::SpiDatum(r, int(c + 1));
				nulls[c] = !value;
				values[c] = value.value_or(Datum(0));
			}
			texts.push_back(RowText(tables_[i].columns, values, nulls));
		}
		out += i == 0 ? texts[0] + kRowSeparator : JoinRows(texts) + kRowSeparator;
	}
	return out;
}

std::optional<std::string> MappingWriter::RefusedValue(const convert::ConvertedDocument &document) {
	auto check = [&](size_t table, const std::vector<convert::Value> &row) -> std::optional<std::string> {
		for (size_t c = 0; c < row.size() && c < tables_[table].columns.size(); c++) {
			std::optional<pg::PgError> error = pg::TrySubtransaction([&] {
				bool isnull = false;
				ToDatum(row[c], tables_[table].columns[c], &isnull);
			});
			if (error)
				return "column \"" + converter_.Layout()[table].columns[c].name + "\" of table " + tables_[table].name +
					   ": " + error->what();
		}
		return std::nullopt;
	};
	if (std::optional<std::string> refused = check(0, document.row))
		return refused;
	for (const convert::ChildRows &child : document.children)
		for (const std::vector<convert::Value> &row : child.rows)
			if (std::optional<std::string> refused = check(child.table, row))
				return refused;
	return std::nullopt;
}

} // namespace mongo_river::apply
