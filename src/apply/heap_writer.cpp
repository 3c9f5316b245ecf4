// heap_writer.cpp: the initial copy's fast path: rows become heap tuples straight from the converted
// values and go in with multi-row heap inserts, as COPY FROM does inside, without COPY's text round
// trip. Everything COPY does for a row is kept: the INSERT privilege check, defaults and generated
// columns of unmapped columns, constraints, index entries, triggers (BEFORE ROW triggers and
// volatile defaults force one row at a time) and statement triggers with transition tables.
// Each Datum equals what the column type's input function makes of the COPY text (the test
// test_copy_tuples_equal_copy_text proves it); values without an exact direct form go through that
// very input function.
#include <cmath>
#include <cstring>
#include <limits>

#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/settings.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace mongo_river::apply {

namespace {

// kUnixEpochInPgMicros and kUnixEpochInPgDays are 1970-01-01 in PostgreSQL's encodings.
constexpr int64 kUnixEpochInPgMicros = int64(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
constexpr int32 kUnixEpochInPgDays = POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE;

// kMaxBufferedTuples and kMaxBufferedBytes bound one multi-row insert, as COPY's buffer does.
constexpr int kMaxBufferedTuples = 1000;
constexpr size_t kMaxBufferedBytes = 65535;

// kActivity is what pg_stat_activity.query shows while rows are written as tuples.
constexpr const char *kActivity = "mongo_river: initial copy, rows written as heap tuples";

// Input is one input function with its I/O parameter and typmod.
struct Input {
	FmgrInfo *function;
	Oid param;
	int32 typmod;
};

// InputText runs an input function on text, exactly as COPY FROM does on the field.
Datum InputText(const std::string &text, const Input &input) {
	return pg::Call(
		[&] { return InputFunctionCall(input.function, const_cast<char *>(text.c_str()), input.param, input.typmod); });
}

// ScalarTuple converts a non-array value for a column (or array element) of type `type` to the
// Datum the type's input function would make of its COPY text: directly where the two are equal by
// construction, through the input function everywhere else.
Datum ScalarTuple(const convert::Value &value, Oid type, const Input &input) {
	const auto &v = value.v;
	if (const auto *b = std::get_if<bool>(&v)) {
		if (type == BOOLOID)
			return BoolGetDatum(*b);
	} else if (const auto *i = std::get_if<convert::Int>(&v)) {
		if (type == INT8OID)
			return Int64GetDatum(i->value);
		if (type == INT4OID && i->value >= PG_INT32_MIN && i->value <= PG_INT32_MAX)
			return Int32GetDatum(int32(i->value));
		if (type == INT2OID && i->value >= PG_INT16_MIN && i->value <= PG_INT16_MAX)
			return Int16GetDatum(int16(i->value));
	} else if (const auto *f = std::get_if<convert::Float>(&v)) {
		// NaN goes through float8in/float4in: its text reads back as the one NaN PostgreSQL makes.
		if (!std::isnan(f->value)) {
			if (type == FLOAT8OID && f->bytes == 8)
				return Float8GetDatum(f->value);
			if (type == FLOAT4OID && f->bytes == 4)
				return Float4GetDatum(float4(f->value));
		}
	} else if (const auto *t = std::get_if<convert::Text>(&v)) {
		if (type == TEXTOID)
			return pg::Call(
				[&] { return PointerGetDatum(cstring_to_text_with_len(t->value.data(), int(t->value.size()))); });
		return InputText(t->value, input);
	} else if (const auto *in = std::get_if<convert::Input>(&v)) {
		return InputText(in->text, input);
	} else if (const auto *n = std::get_if<convert::Numeric>(&v)) {
		return InputText(n->text, input);
	} else if (const auto *json = std::get_if<convert::JsonText>(&v)) {
		return InputText(json->text, input);
	} else if (const auto *ts = std::get_if<convert::Timestamp>(&v)) {
		if ((type == TIMESTAMPTZOID && ts->with_time_zone) || (type == TIMESTAMPOID && !ts->with_time_zone)) {
			Datum datum = TimestampGetDatum(ts->micros - kUnixEpochInPgMicros);
			if (input.typmod < 0)
				return datum;
			return pg::Call([&] {
				return DirectFunctionCall2(type == TIMESTAMPOID ? timestamp_scale : timestamptz_scale, datum,
										   Int32GetDatum(input.typmod));
			});
		}
	} else if (const auto *d = std::get_if<convert::Date>(&v)) {
		if (type == DATEOID)
			return DateADTGetDatum(DateADT(d->days - kUnixEpochInPgDays));
	} else if (const auto *u = std::get_if<convert::Uuid>(&v)) {
		if (type == UUIDOID)
			return pg::Call([&] {
				pg_uuid_t *uuid = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
				std::memcpy(uuid->data, u->bytes.data(), UUID_LEN);
				return UUIDPGetDatum(uuid);
			});
	} else if (const auto *bytes = std::get_if<convert::Bytes>(&v)) {
		if (type == BYTEAOID)
			return pg::Call([&] {
				bytea *result = static_cast<bytea *>(palloc(VARHDRSZ + bytes->data.size()));
				SET_VARSIZE(result, VARHDRSZ + bytes->data.size());
				std::memcpy(VARDATA(result), bytes->data.data(), bytes->data.size());
				return PointerGetDatum(result);
			});
	}
	return InputText(convert::ValueText(value), input);
}

} // namespace

// TupleSink is one table's insertion state for a batch: the executor state COPY FROM would set up,
// the defaults of unmapped columns, and the buffer of tuples waiting for a multi-row insert.
struct MappingWriter::TupleSink {
	Relation rel = nullptr;
	EState *estate = nullptr;
	ResultRelInfo *rri = nullptr;
	TransitionCaptureState *transition = nullptr;
	BulkInsertState bistate = nullptr;
	CommandId cid = 0;
	int options = 0;
	bool single = false;                               // one row at a time: BEFORE ROW triggers or volatile defaults
	std::vector<int> attno;                            // mapped column -> attribute index (0-based)
	std::vector<std::pair<int, ExprState *>> defaults; // unmapped attribute index, default expression
	std::vector<TupleTableSlot *> slots;
	TupleDesc slot_desc = nullptr; // the relation's row type, not reference-counted
	int capacity = 0;              // rows buffered at most
	int used = 0;
	size_t bytes = 0;
	uint64 rows = 0;
};

bool MappingWriter::TuplesPossible(size_t index) const {
	if (!setting_copy_builds_tuples)
		return false;
	const Table &table = tables_[index];
	const convert::TableLayout &layout = converter_.Layout()[index];
	std::vector<const char *> names;
	for (const convert::ColumnSpec &spec : layout.columns)
		names.push_back(spec.name.c_str());
	return pg::Call([&] {
		if (GetDatabaseEncoding() != PG_UTF8)
			return false; // COPY converts the text from UTF-8; tuples would not
		if (get_rel_relkind(table.relation) != RELKIND_RELATION)
			return false; // a partitioned table: COPY routes the rows to partitions
		// The Datums are built for the column types read when the mapping was loaded: a column
		// altered or dropped since goes through COPY, which reads the table as it is now.
		for (size_t c = 0; c < names.size(); c++) {
			AttrNumber attnum = get_attnum(table.relation, names[c]);
			if (attnum == InvalidAttrNumber)
				return false;
			Oid type;
			int32 typmod;
			Oid collation;
			get_atttypetypmodcoll(table.relation, attnum, &type, &typmod, &collation);
			if (type != table.columns[c].type || typmod != table.columns[c].typmod)
				return false;
		}
		return true;
	});
}

void MappingWriter::OpenSink(size_t index, TupleSink *sink) {
	const Table &table = tables_[index];
	const convert::TableLayout &layout = converter_.Layout()[index];
	size_t columns = layout.columns.size();
	// Sized here, filled under pg::Call below: nothing there allocates C++ memory.
	int natts = pg::Call([&] {
		sink->rel = table_open(table.relation, RowExclusiveLock);
		return RelationGetDescr(sink->rel)->natts;
	});
	sink->attno.assign(columns, -1);
	sink->defaults.reserve(size_t(natts));
	sink->slots.reserve(kMaxBufferedTuples);
	std::vector<const char *> names;
	for (const convert::ColumnSpec &spec : layout.columns)
		names.push_back(spec.name.c_str());
	pg::Call([&] {
		Relation rel = sink->rel;
		ParseState *pstate = make_parsestate(nullptr);
		ParseNamespaceItem *item = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, nullptr, false, false);
		item->p_rte->requiredPerms = ACL_INSERT;
		for (size_t c = 0; c < columns; c++) {
			AttrNumber attnum = attnameAttNum(rel, names[c], false);
			if (attnum == InvalidAttrNumber)
				ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
								errmsg("column \"%s\" of relation \"%s\" does not exist", names[c],
									   RelationGetRelationName(rel)),
								errhint("The mapped table was altered; map the collection again or restore the "
										"column.")));
			item->p_rte->insertedCols =
				bms_add_member(item->p_rte->insertedCols, attnum - FirstLowInvalidHeapAttributeNumber);
			sink->attno[c] = attnum - 1;
		}
		ExecCheckRTPerms(pstate->p_rtable, true);

		EState *estate = CreateExecutorState();
		ExecInitRangeTable(estate, pstate->p_rtable);
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		ExecInitResultRelation(estate, rri, 1);
		CheckValidResultRel(rri, CMD_INSERT);
		ExecOpenIndices(rri, false);
		sink->cid = GetCurrentCommandId(true);
		estate->es_output_cid = sink->cid;
		sink->estate = estate;
		sink->rri = rri;
		sink->options = 0;
		if (rel->rd_createSubid != InvalidSubTransactionId || rel->rd_firstRelfilenodeSubid != InvalidSubTransactionId)
			sink->options |= TABLE_INSERT_SKIP_FSM; // created in this transaction: no free space to find

		// Unmapped columns get their defaults (identity and serial included); stored generated
		// columns are computed for each row.
		TupleDesc desc = RelationGetDescr(rel);
		bool volatile_defaults = false;
		for (int a = 0; a < desc->natts; a++) {
			Form_pg_attribute attribute = TupleDescAttr(desc, a);
			if (attribute->attisdropped || attribute->attgenerated)
				continue;
			bool mapped = false;
			for (size_t c = 0; c < columns; c++)
				mapped = mapped || sink->attno[c] == a;
			if (mapped)
				continue;
			Expr *expression = (Expr *)build_column_default(rel, a + 1);
			if (!expression)
				continue;
			expression = expression_planner(expression);
			volatile_defaults = volatile_defaults || contain_volatile_functions_not_nextval((Node *)expression);
			sink->defaults.emplace_back(a, ExecInitExpr(expression, nullptr)); // within capacity
		}
		TriggerDesc *triggers = rri->ri_TrigDesc;
		sink->single = volatile_defaults || (triggers && triggers->trig_insert_before_row);

		AfterTriggerBeginQuery();
		sink->transition = MakeTransitionCaptureState(rel->trigdesc, RelationGetRelid(rel), CMD_INSERT);
		ExecBSInsertTriggers(estate, rri);
		sink->bistate = GetBulkInsertState();
		sink->capacity = sink->single ? 1 : kMaxBufferedTuples; // slots are made as rows need them
		// The slots' descriptor is a copy nobody counts references to: a thousand slots pinning the
		// relation's own descriptor fill the resource owner with one value, which slows down every
		// later remember/forget there (each foreign key check's query at the end of the statement).
		sink->slot_desc = CreateTupleDescCopy(RelationGetDescr(rel));
		free_parsestate(pstate);
	});
}

void MappingWriter::FlushSink(TupleSink *sink) {
	if (sink->used == 0)
		return;
	pg::Call([&] {
		EState *estate = sink->estate;
		ResultRelInfo *rri = sink->rri;
		MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
		if (sink->used == 1)
			table_tuple_insert(sink->rel, sink->slots[0], sink->cid, sink->options, sink->bistate);
		else
			table_multi_insert(sink->rel, sink->slots.data(), sink->used, sink->cid, sink->options, sink->bistate);
		MemoryContextSwitchTo(old);
		TriggerDesc *triggers = rri->ri_TrigDesc;
		bool after = triggers && (triggers->trig_insert_after_row || triggers->trig_insert_new_table);
		for (int s = 0; s < sink->used; s++) {
			TupleTableSlot *slot = sink->slots[s];
			if (rri->ri_NumIndices > 0) {
				List *recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL);
				ExecARInsertTriggers(estate, rri, slot, recheck, sink->transition);
				list_free(recheck);
			} else if (after) {
				ExecARInsertTriggers(estate, rri, slot, NIL, sink->transition);
			}
			ExecClearTuple(slot);
		}
		ResetPerTupleExprContext(estate);
	});
	sink->rows += uint64(sink->used);
	sink->used = 0;
	sink->bytes = 0;
}

void MappingWriter::AddToSink(size_t index, TupleSink *sink, const std::vector<convert::Value> &row) {
	const Table &table = tables_[index];
	EState *estate = sink->estate;
	if (sink->used == int(sink->slots.size()))
		pg::Call([&] {
			sink->slots.push_back(ExecAllocTableSlot(&estate->es_tupleTable, sink->slot_desc,
													 table_slot_callbacks(sink->rel))); // reserved
		});
	TupleTableSlot *slot = sink->slots[sink->used];
	// The row's Datums live in the per-tuple context until the slot is materialized.
	MemoryContext old = pg::Call([&] {
		ResetPerTupleExprContext(estate);
		ExecClearTuple(slot);
		std::fill(slot->tts_isnull, slot->tts_isnull + slot->tts_tupleDescriptor->natts, true);
		return MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	});
	struct Restore {
		MemoryContext context;
		~Restore() { MemoryContextSwitchTo(context); }
	} restore{old};
	for (size_t c = 0; c < row.size(); c++) {
		const convert::Value &value = row[c];
		int a = sink->attno[c];
		const ColumnType &column = table.columns[c];
		if (value.IsNull()) {
			CheckDomainNull(column);
			slot->tts_isnull[a] = true;
			continue;
		}
		Datum datum;
		const auto *array = std::get_if<convert::Array>(&value.v);
		if (!OidIsValid(column.element)) {
			datum = ScalarTuple(value, column.type,
								Input{const_cast<FmgrInfo *>(&column.input), column.input_param, column.typmod});
		} else if (!array) {
			// An array column given a value that is no array: the type's own input reads its text
			// whole, as COPY does (ColumnType::whole_input, looked up with the mapping).
			datum = InputText(convert::ValueText(value),
							  Input{const_cast<FmgrInfo *>(&column.whole_input), column.whole_param, column.typmod});
		} else {
			Input element{const_cast<FmgrInfo *>(&column.input), column.input_param, column.typmod};
			size_t count = array->elements.size();
			Datum *elements = pg::Call([&] { return static_cast<Datum *>(palloc(sizeof(Datum) * (count + 1))); });
			bool *nulls = pg::Call([&] { return static_cast<bool *>(palloc(sizeof(bool) * (count + 1))); });
			for (size_t e = 0; e < count; e++) {
				nulls[e] = array->elements[e].IsNull();
				elements[e] = nulls[e] ? Datum(0) : ScalarTuple(array->elements[e], column.element, element);
			}
			datum = pg::Call([&] { return ArrayDatum(elements, nulls, count, column); });
		}
		slot->tts_values[a] = datum;
		slot->tts_isnull[a] = false;
	}
	bool keep = pg::Call([&] {
		ExprContext *econtext = GetPerTupleExprContext(estate);
		for (const auto &[a, expression] : sink->defaults)
			slot->tts_values[a] = ExecEvalExpr(expression, econtext, &slot->tts_isnull[a]);
		ExecStoreVirtualTuple(slot);
		MemoryContextSwitchTo(restore.context); // triggers run in the query's context, as in COPY
		ResultRelInfo *rri = sink->rri;
		if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_before_row && !ExecBRInsertTriggers(estate, rri, slot))
			return false; // the trigger skipped the row
		if (sink->rel->rd_att->constr && sink->rel->rd_att->constr->has_generated_stored)
			ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
		if (sink->rel->rd_att->constr)
			ExecConstraints(rri, slot, estate);
		if (sink->rel->rd_rel->relispartition)
			ExecPartitionCheck(rri, slot, estate, true);
		ExecMaterializeSlot(slot); // the buffered tuple outlives the per-tuple context
		// The row's Datums are in the tuple now: free them before the tuple is written (an 8 MiB
		// value is then held once, not twice, while TOAST compresses it).
		ResetPerTupleExprContext(estate);
		return true;
	});
	if (!keep)
		return;
	sink->bytes += pg::Call([&] {
		bool should_free = false;
		HeapTuple tuple = ExecFetchSlotHeapTuple(slot, false, &should_free);
		return size_t(tuple->t_len);
	});
	sink->used++;
	if (sink->used == sink->capacity || sink->bytes >= kMaxBufferedBytes)
		FlushSink(sink);
}

void MappingWriter::CloseSink(TupleSink *sink) {
	FlushSink(sink);
	pg::Call([&] {
		ExecASInsertTriggers(sink->estate, sink->rri, sink->transition);
		AfterTriggerEndQuery(sink->estate);
		FreeBulkInsertState(sink->bistate);
		table_finish_bulk_insert(sink->rel, sink->options);
		ExecResetTupleTable(sink->estate->es_tupleTable, false);
		ExecCloseResultRelations(sink->estate);
		ExecCloseRangeTableRelations(sink->estate);
		FreeExecutorState(sink->estate);
		table_close(sink->rel, NoLock);
		CommandCounterIncrement();
	});
}

uint64 MappingWriter::InsertTuples(size_t index, const std::vector<const std::vector<convert::Value> *> &rows) {
	// pg_stat_activity shows the path while it runs (and the tests tell it from COPY with it).
	std::string previous;
	BackendState previous_state = STATE_UNDEFINED;
	if (MyBEEntry) {
		previous = MyBEEntry->st_activity_raw;
		previous_state = MyBEEntry->st_state;
	}
	pg::Call([&] { pgstat_report_activity(STATE_RUNNING, kActivity); });
	struct Restore {
		const std::string &text;
		BackendState state;
		~Restore() {
			if (MyBEEntry)
				pgstat_report_activity(state, text.c_str()); // no ERROR: it only copies into shared memory
		}
	} restore{previous, previous_state};
	TupleSink sink;
	// On an error the subtransaction's rollback pops the snapshot and closes what is open.
	pg::Call([&] { PushActiveSnapshot(GetTransactionSnapshot()); });
	OpenSink(index, &sink);
	for (const std::vector<convert::Value> *row : rows)
		AddToSink(index, &sink, *row);
	CloseSink(&sink);
	pg::Call([&] { PopActiveSnapshot(); });
	return sink.rows;
}

} // namespace mongo_river::apply
