// mapping_writer.hpp: applies converted documents of one mapped collection to its tables via SPI.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <bson/bson.h>

#include "mongo_river/apply/column_writer.hpp"
#include "mongo_river/catalog/river.hpp"
#include "mongo_river/convert/row.hpp"
#include "mongo_river/pg/spi.hpp"

namespace mongo_river::apply {

// ChangeInfo describes the change a history-mode row records: its operation, source cluster time
// (t << 32 | i), wallTime and a position unique to the change (a change seen twice is recorded once).
// StatementRows returns how many of left rows the next multi-row statement takes: most while at least
// that many are left, then the largest power of two not above what is left, so that a few prepared
// plans (one per row count) serve every batch instead of a new plan for each batch's remainder.
inline std::size_t StatementRows(std::size_t left, std::size_t most) {
	if (left >= most)
		return most;
	std::size_t rows = 1;
	while (rows * 2 <= left)
		rows *= 2;
	return rows;
}

struct ChangeInfo {
	std::string operation;
	uint64 cluster_time = 0;
	std::optional<int64_t> wall_ms;
	std::string position;
};

// MappingWriter holds, for one mapping, the document converter and the prepared statements of its
// tables: upsert of the target row, delete by key, replacement of child rows. Build it inside a
// transaction (it reads the catalog); the plans survive across transactions.
class MappingWriter {
public:
	explicit MappingWriter(const catalog::MappingRow &row);

	const catalog::MappingRow &Row() const { return row_; }
	const convert::DocumentConverter &Converter() const { return converter_; }

	// Convert converts a document by the mapping (errors are listed, never thrown).
	convert::ConvertedDocument Convert(const bson_t &document) const { return converter_.Convert(document); }
	void ConvertInto(const bson_t &document, convert::ConvertedDocument *out) const {
		converter_.ConvertInto(document, out);
	}
	// Upsert writes a converted document: the target row is inserted or updated, its child rows
	// replaced. Idempotent, so a change seen twice (copy/stream overlap) does no harm.
	// In history mode (History()), it appends a version instead, described by change.
	void Upsert(const convert::ConvertedDocument &document, const ChangeInfo &change);
	// Delete removes the row with this key (child rows go with it: ON DELETE CASCADE); in history
	// mode it appends a 'delete' version.
	void Delete(const convert::Value &key, const ChangeInfo &change);
	// AppendBareVersion (history mode) appends a version of key with change's operation and no
	// document: a change whose document the source no longer has (an update deleted since).
	void AppendBareVersion(const convert::Value &key, const ChangeInfo &change);
	bool History() const { return row_.mode == "history"; }
	// UpsertBatch is Upsert for many documents of distinct keys at once (upsert mode only): the old
	// child rows of all of them are deleted with one statement, then target and child rows are
	// written with multi-row statements. DeleteBatch deletes many keys' rows with one statement.
	void UpsertBatch(const std::vector<const convert::ConvertedDocument *> &documents);
	void DeleteBatch(const std::vector<convert::Value> &keys);
	// PatchRows updates, in place, the root-row columns that updates changed (upsert mode; one
	// statement per set of changed columns and chunk of rows): each patch names the row's key and
	// its changed columns (index in the root row, new value); a patch without columns only checks
	// that the row exists. Returns the indexes of the patches whose key has no row: their documents
	// must be written whole. Keys must be distinct.
	struct RowPatch {
		const convert::Value *key;
		const std::vector<std::pair<std::size_t, convert::Value>> *columns;
	};
	std::vector<std::size_t> PatchRows(const std::vector<RowPatch> &patches);
	// PatchVersion (history mode) appends the version an update makes: the key's latest version
	// with the changed columns replaced, described by change. False when there is no version to
	// start from (none, or the latest is a delete), or when change is recorded already: then the
	// caller writes the version from the document.
	bool PatchVersion(const convert::Value &key, const std::vector<std::pair<std::size_t, convert::Value>> &columns,
					  const ChangeInfo &change);
	// CanCopy tells whether CopyRows may write this mapping's rows: upsert mode, and no table with
	// row-level security enabled (COPY FROM does not apply its policies).
	bool CanCopy() const;
	// CopyRows writes the rows of documents whose keys have no rows yet (the initial copy): as heap
	// tuples built from the converted values in multi-row inserts (InsertTuples), or through COPY
	// FROM text for the tables that path does not take (TuplesPossible). Either way constraints,
	// indexes and triggers run as for INSERT; a key that already has a row fails with
	// unique_violation (run it in a subtransaction and fall back to UpsertBatch).
	void CopyRows(const std::vector<const convert::ConvertedDocument *> &documents);
	// RecordSeenBatch is RecordSeen for many keys.
	void RecordSeenBatch(const std::string &river, const std::vector<convert::Value> &keys);
	// RecordSeen notes key in resync_seen (a resync is in progress for this mapping).
	void RecordSeen(const std::string &river, const convert::Value &key);
	// DeleteUnseen ends a resync: rows whose key was not seen since it began are deleted, and the
	// seen keys forgotten (in history mode, a 'delete' version at cluster_time is added instead).
	// Returns the number of rows deleted (or versions added).
	uint64 DeleteUnseen(const std::string &river, uint64 cluster_time);
	// DocumentText renders the rows a converted document gives (its target row, then each child
	// table's rows, sorted) as text through the columns' output functions; StoredText renders what
	// is stored for key the same way (nullopt without a target row). Equal texts: equal rows.
	std::string DocumentText(const convert::ConvertedDocument &document);
	std::optional<std::string> StoredText(const convert::Value &key);
	// RefusedValue names the first value of a converted document that its column's type refuses
	// ('column "total" of table public.orders: numeric field overflow'), or returns nullopt.
	std::optional<std::string> RefusedValue(const convert::ConvertedDocument &document);
	// TargetName and KeyColumn name the target table (quoted, qualified) and its key column (quoted).
	const std::string &TargetName() const { return tables_[0].name; }
	const std::string &KeyColumn() const { return key_column_; }
	const std::string &KeyTypeName() const { return key_type_name_; }
	// KeyFromId converts a document's _id to the target's key value (throws ConversionError).
	convert::Value KeyFromId(const bson_value_t *id) const;

private:
	// Table is one table of the mapping with its column types and statements.
	struct Table {
		Oid relation = InvalidOid;
		std::string name; // quoted, schema-qualified
		std::vector<ColumnType> columns;
		pg::SpiPlan insert;        // root: INSERT ... ON CONFLICT (pk) DO UPDATE; children: plain INSERT
		pg::SpiPlan delete_by_key; // root: by pk; top-level children: by fk
		pg::SpiPlan bare_version;  // history root: a version of a key without its document
		pg::SpiPlan select_by_key; // root: by pk; children: by fk (nested ones: fk starting with it)
		int parent = -1;
		// Multi-row statements (UpsertBatch): "INSERT INTO t (cols) VALUES " + rows + tail, one
		// prepared plan per row count; the key column (root: pk; top-level child: fk) for = ANY().
		std::vector<Oid> types;
		std::string insert_head;
		std::string insert_tail;
		std::map<size_t, pg::SpiPlan> multi_insert;
		std::string key_quoted;
		Oid key_type = InvalidOid;
		pg::SpiPlan delete_any; // DELETE ... WHERE key = ANY($1)
	};

	// PatchChunk runs the patch statement of the column set columns for patches[first, first + count)
	// and returns the number of rows it found.
	uint64 PatchChunk(const std::vector<std::size_t> &columns, const std::vector<RowPatch> &patches,
					  const std::vector<std::size_t> &members, std::size_t first, std::size_t count);
	// UnnestChunk is PatchChunk by the column set's unnest statement (UnnestPlan); false, nothing
	// done, when the set has none.
	bool UnnestChunk(const std::vector<std::size_t> &columns, const std::vector<RowPatch> &patches,
					 const std::vector<std::size_t> &members, std::size_t first, std::size_t count, uint64 *found);
	// UnnestPlan returns the column set's statement patching any number of rows from one array per
	// column (UPDATE ... FROM unnest($1, $2, ...)); nullptr when a column's type is an array (unnest
	// would flatten it) or has no array type: that set takes the VALUES statements.
	const pg::SpiPlan *UnnestPlan(const std::vector<std::size_t> &columns);
	// ArrayOfKeys returns keys (Datums of the root table's key type) as an array Datum.
	Datum ArrayOfKeys(const std::vector<Datum> &keys) const;
	struct TupleSink;
	// TuplesPossible tells whether table index takes rows as heap tuples: the setting
	// mongo_river.copy_builds_tuples is on, the database encoding is UTF-8, the table is a plain
	// table (a partitioned one takes COPY, which routes rows to partitions) and its mapped columns
	// have the types the mapping was loaded with.
	bool TuplesPossible(size_t index) const;
	// InsertTuples inserts rows into table index as heap tuples, the way COPY FROM does inside
	// (privilege check, defaults, generated columns, constraints, indexes, triggers); returns the
	// number of rows inserted (BEFORE ROW triggers may skip some).
	uint64 InsertTuples(size_t index, const std::vector<const std::vector<convert::Value> *> &rows);
	// OpenSink, AddToSink, FlushSink and CloseSink are InsertTuples' steps: set up the executor
	// state of a table, buffer one row (flushing a full buffer), insert the buffered rows, finish.
	void OpenSink(size_t index, TupleSink *sink);
	void AddToSink(size_t index, TupleSink *sink, const std::vector<convert::Value> &row);
	void FlushSink(TupleSink *sink);
	void CloseSink(TupleSink *sink);
	// InsertRows writes rows into table index with multi-row statements (chunked).
	void InsertRows(size_t index, const std::vector<const std::vector<convert::Value> *> &rows);
	// DeleteAny deletes the rows of table index whose key column is one of keys.
	void DeleteAny(size_t index, const std::vector<Datum> &keys);

	// RowText renders Datums of a table's row as one line of text.
	static std::string RowText(const std::vector<ColumnType> &types, const std::vector<Datum> &values,
							   const std::vector<bool> &nulls);
	// PrepareSelect builds a table's select_by_key plan (on first use).
	void PrepareSelect(size_t index);

	// PrepareTable builds the statements of layout table index.
	void PrepareTable(size_t index, Oid relation);
	// Execute binds row to a table's plan and runs it.
	void Execute(const Table &table, const pg::SpiPlan &plan, const std::vector<convert::Value> &row,
				 const std::vector<ColumnType> &types);

	catalog::MappingRow row_;
	convert::DocumentConverter converter_;
	std::vector<Table> tables_;
	ColumnType key_type_;
	std::string key_column_; // quoted
	std::string key_type_name_;
	// PatchPlan is a prepared patch statement; keys_array: it takes the chunk's keys as an array last.
	struct PatchPlan {
		pg::SpiPlan plan;
		bool keys_array = false;
	};
	std::map<std::string, PatchPlan> patch_plans_;    // PatchChunk's, by column set and row count
	std::map<std::string, pg::SpiPlan> unnest_plans_; // UnnestPlan's, by column set (invalid: none)
};

} // namespace mongo_river::apply
