// copy_writer.cpp: the initial copy's bulk path: new rows go in as heap tuples (heap_writer.cpp)
// or, for the tables that path does not take, through PostgreSQL's own COPY FROM machinery
// (BeginCopyFrom with a data source callback), which inserts in multi-row heap batches and still
// runs the table's constraints, indexes and triggers, like a COPY a user would run.
#include <cstring>

#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "access/table.h"
#include "access/xact.h"
#include "commands/copy.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
}

namespace mongo_river::apply {

namespace {

// CopySource is the text a running COPY reads (its callback takes no argument, hence a static).
struct CopySource {
	const std::string *text = nullptr;
	size_t offset = 0;
};
CopySource copy_source;

int ReadCopySource(void *outbuf, int /*minread*/, int maxread) {
	size_t left = copy_source.text->size() - copy_source.offset;
	size_t n = std::min(left, size_t(maxread));
	std::memcpy(outbuf, copy_source.text->data() + copy_source.offset, n);
	copy_source.offset += n;
	return int(n);
}

// CopyText runs COPY relation (columns) FROM the rows in text, in the database's encoding from
// UTF-8, checking the INSERT privilege the way COPY does. Returns the number of rows.
uint64 CopyText(Oid relation, const std::vector<std::string> &columns, const std::string &text) {
	copy_source = CopySource{&text, 0};
	return pg::Call([&] {
		Relation rel = table_open(relation, RowExclusiveLock);
		ParseState *pstate = make_parsestate(nullptr);
		ParseNamespaceItem *item = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
		RangeTblEntry *rte = item->p_rte;
		rte->requiredPerms = ACL_INSERT;
		List *names = NIL;
		for (const std::string &column : columns) {
			AttrNumber attnum = attnameAttNum(rel, column.c_str(), false);
			rte->insertedCols = bms_add_member(rte->insertedCols, attnum - FirstLowInvalidHeapAttributeNumber);
			names = lappend(names, makeString(pstrdup(column.c_str())));
		}
		ExecCheckRTPerms(pstate->p_rtable, true);
		List *options = list_make1(makeDefElem(pstrdup("encoding"), (Node *)makeString(pstrdup("UTF8")), -1));
		PushActiveSnapshot(GetTransactionSnapshot());
		CopyFromState state = BeginCopyFrom(pstate, rel, nullptr, nullptr, false, ReadCopySource, names, options);
		uint64 rows = CopyFrom(state);
		EndCopyFrom(state);
		PopActiveSnapshot();
		free_parsestate(pstate);
		table_close(rel, NoLock);
		CommandCounterIncrement();
		return rows;
	});
}

} // namespace

bool MappingWriter::CanCopy() const {
	if (History())
		return false;
	// COPY FROM does not apply row-level security policies: such tables take the INSERT path.
	for (const Table &table : tables_)
		if (pg::Call([&] { return check_enable_rls(table.relation, InvalidOid, true); }) == RLS_ENABLED)
			return false;
	return true;
}

void MappingWriter::CopyRows(const std::vector<const convert::ConvertedDocument *> &documents) {
	std::vector<std::vector<const std::vector<convert::Value> *>> rows(tables_.size());
	for (const convert::ConvertedDocument *document : documents) {
		rows[0].push_back(&document->row);
		for (const convert::ChildRows &child : document->children)
			for (const std::vector<convert::Value> &row : child.rows)
				rows[child.table].push_back(&row);
	}
	const auto &layout = converter_.Layout();
	for (size_t i = 0; i < tables_.size(); i++) {
		if (rows[i].empty())
			continue;
		if (TuplesPossible(i)) {
			InsertTuples(i, rows[i]);
			continue;
		}
		std::string text;
		for (const std::vector<convert::Value> *row : rows[i]) {
			for (size_t c = 0; c < row->size(); c++) {
				if (c)
					text.push_back('\t');
				convert::AppendCopyField((*row)[c], &text);
			}
			text.push_back('\n');
		}
		std::vector<std::string> columns;
		for (const convert::ColumnSpec &spec : layout[i].columns)
			columns.push_back(spec.name);
		CopyText(tables_[i].relation, columns, text);
	}
}

} // namespace mongo_river::apply
