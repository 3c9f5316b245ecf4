// control.cpp: SQL-callable river control that needs C++: wait_for_sync.
#include <memory>
#include <string>

#include "mongo_river/api/checks.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/pg/transaction.hpp"
#include "mongo_river/worker/river_worker.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
}

namespace mongo_river::api {

namespace {

// RiverUri returns the URI of river (the caller needs the catalog privileges an admin has).
std::string RiverUri(const std::string &river) {
	pg::SpiConnection spi;
	if (pg::SpiExecute("SELECT uri FROM mongo_river.river WHERE river = $1", {{NAMEOID, pg::NameDatum(river)}}, true) ==
		0)
		throw Error(sqlstate::kUndefinedObject, "wait_for_sync: river \"" + river + "\" does not exist", {},
					"SELECT river FROM mongo_river.rivers lists the rivers.");
	return pg::SpiText(0, 1).value_or("");
}

// SyncedUpTo tells whether the river has applied everything up to source time target, copied every
// mapped collection and caught up every copy: false one (a fresh snapshot each call).
bool SyncedUpTo(const std::string &river, uint64 target) {
	pg::SpiConnection spi;
	pg::SpiExecute("SELECT coalesce(p.reached, 0) >= $2 AND NOT EXISTS (SELECT 1 FROM mongo_river.mapping_state s"
				   " WHERE s.river = p.river AND (s.phase IN ('pending', 'initial_copy', 'resync') OR s.catch_up))"
				   " FROM mongo_river.progress p WHERE p.river = $1",
				   {{NAMEOID, pg::NameDatum(river)}, {INT8OID, Int64GetDatum(int64(target))}});
	return pg::SpiText(0, 1).value_or("f") == "t";
}

} // namespace

} // namespace mongo_river::api

// mongo_river_wait_for_sync(river name, timeout interval) asks the source for its current operation
// time, then waits until the river has applied every change up to it (true) or timeout passes (false).
MONGO_RIVER_FUNCTION(mongo_river_wait_for_sync) {
	using namespace mongo_river;
	return pg::Guard([&] {
		if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
			throw Error("22004", std::string("wait_for_sync: argument ") + (PG_ARGISNULL(0) ? "river" : "timeout") +
									 " must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		Interval *timeout = PG_GETARG_INTERVAL_P(1);
		int64 timeout_ms = (timeout->time + (int64(timeout->day) + int64(timeout->month) * 30) * USECS_PER_DAY) / 1000;
		pg::EnsureMongocInitialized();
		uint64 target;
		{
			mongo::Source source(api::RiverUri(river));
			target = source.OperationTime().AsUint64();
		}
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
		while (true) {
			if (api::SyncedUpTo(river, target))
				return BoolGetDatum(true);
			if (GetCurrentTimestamp() >= deadline)
				return BoolGetDatum(false);
			pg::Call([] {
				(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			});
		}
	});
}

// mongo_river_sync_once(river name, timeout interval, INOUT applied bigint) is the PROCEDURE
// sync_once: it catches a stopped river up to the source's current time in the calling backend,
// committing per batch (CALL it outside a transaction block, e.g. from pg_cron).
MONGO_RIVER_FUNCTION(mongo_river_sync_once) {
	using namespace mongo_river;
	return pg::Guard([&]() -> Datum {
		if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
			throw Error("22004", std::string("sync_once: argument ") + (PG_ARGISNULL(0) ? "river" : "timeout") +
									 " must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		Interval *timeout = PG_GETARG_INTERVAL_P(1);
		int64 timeout_ms = (timeout->time + (int64(timeout->day) + int64(timeout->month) * 30) * USECS_PER_DAY) / 1000;
		{
			pg::SpiConnection spi;
			api::RequireRiverOwner("sync_once", river);
			pg::SpiExecute("SELECT r.enabled, EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = "
						   "'mongo_river worker' AND application_name = 'mongo_river ' || r.river)"
						   " FROM mongo_river.river r WHERE r.river = $1",
						   {{NAMEOID, pg::NameDatum(river)}});
			if (pg::SpiText(0, 1).value_or("f") == "t" || pg::SpiText(0, 2).value_or("f") == "t")
				throw Error("55006", "sync_once: river \"" + river + "\" is run by its worker", {},
							"sync_once is for stopped rivers: SELECT mongo_river.stop('" + river +
								"') first, and wait until its worker has exited.");
		}
		pg::EnsureMongocInitialized();
		int64 applied;
		{
			pg::ProcedureTransactions transactions;
			applied = worker::SyncOnce(river, timeout_ms);
		}
		return pg::Call([&] {
			TupleDesc tupdesc;
			if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
				elog(ERROR, "mongo_river: sync_once must return a record");
			tupdesc = BlessTupleDesc(tupdesc);
			Datum values[1] = {Int64GetDatum(applied)};
			bool nulls[1] = {false};
			return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
		});
	});
}
