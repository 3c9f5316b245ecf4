// live_status.cpp: the shared-memory table behind mongo_river.status.
#include "mongo_river/worker/live_status.hpp"

#include <cstring>
#include <set>
#include <string>

#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/settings.hpp"

extern "C" {
#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

namespace mongo_river::worker {

namespace {

constexpr int kSourceBytes = 256;
constexpr int kPhaseBytes = 16;
constexpr int kErrorBytes = 512;
constexpr const char *kTranche = "mongo_river";

// Entry is one river (source empty) or collection.
struct Entry {
	bool in_use;
	char river[NAMEDATALEN];
	char source[kSourceBytes];
	char phase[kPhaseBytes];
	int64 docs_copied;
	int64 changes_applied;
	TimestampTz last_source_time; // 0: none
	bool caught_up;
	int32 pid;
	char last_error[kErrorBytes];
	int64 oplog_margin_s; // -1: unknown
	TimestampTz updated_at;
	TimestampTz copy_started;   // 0: none
	int64 copy_total;           // -1: unknown
	double copy_rate;           // documents per second, -1: unknown
	TimestampTz oldest_pending; // 0: none
	TimestampTz newest_seen;    // 0: none
	char waiting[kErrorBytes];
	bool overflow; // river entry: some of its collections found the table full (status says so)
};

struct Table {
	LWLock *lock;
	int capacity;
	Entry entries[FLEXIBLE_ARRAY_MEMBER];
};

Table *table = nullptr;
shmem_request_hook_type previous_request = nullptr;
shmem_startup_hook_type previous_startup = nullptr;

Size TableSize() {
	return add_size(offsetof(Table, entries), mul_size(sizeof(Entry), setting_max_collections));
}

void RequestHook() {
	if (previous_request)
		previous_request();
	RequestAddinShmemSpace(TableSize());
	RequestNamedLWLockTranche(kTranche, 1);
}

void StartupHook() {
	if (previous_startup)
		previous_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bool found = false;
	table = static_cast<Table *>(ShmemInitStruct("mongo_river live status", TableSize(), &found));
	if (!found) {
		memset(table, 0, TableSize());
		table->lock = &(GetNamedLWLockTranche(kTranche))->lock;
		table->capacity = setting_max_collections;
	}
	LWLockRelease(AddinShmemInitLock);
}

// MsToTimestamp converts ms since the Unix epoch (0: none) to a TimestampTz (0: none).
TimestampTz MsToTimestamp(int64 ms) {
	return ms == 0 ? 0 : time_t_to_timestamptz(0) + ms * 1000;
}

void Copy(char *to, size_t size, const std::string &from) {
	strlcpy(to, from.c_str(), size);
}

// FindEntry returns river/source's entry, a free one (claimed), or nullptr when the table is full.
// Call with the lock held exclusively.
Entry *FindEntry(const std::string &river, const std::string &source, bool claim) {
	Entry *free_entry = nullptr;
	for (int i = 0; i < table->capacity; i++) {
		Entry &entry = table->entries[i];
		if (!entry.in_use) {
			if (!free_entry)
				free_entry = &entry;
			continue;
		}
		if (river == entry.river && source == entry.source)
			return &entry;
	}
	if (!claim || !free_entry)
		return nullptr;
	memset(free_entry, 0, sizeof(Entry));
	free_entry->in_use = true;
	free_entry->oplog_margin_s = -1;
	free_entry->copy_total = -1;
	free_entry->copy_rate = -1;
	Copy(free_entry->river, sizeof(free_entry->river), river);
	Copy(free_entry->source, sizeof(free_entry->source), source);
	return free_entry;
}

} // namespace

void RequestLiveStatus() {
	previous_request = shmem_request_hook;
	shmem_request_hook = RequestHook;
	previous_startup = shmem_startup_hook;
	shmem_startup_hook = StartupHook;
}

void InitLiveStatus() {
	StartupHook();
}

void ReportLive(const std::string &river, const std::string &source, const LiveUpdate &update) {
	if (!table)
		return;
	pg::Call([&] {
		LWLockAcquire(table->lock, LW_EXCLUSIVE);
		Entry *entry = FindEntry(river, source, true);
		bool full = !entry;
		if (full) {
			// Past mongo_river.max_collections: status reads this collection's state from the
			// catalog; the river's entry tells status (and the log, once per process) why.
			Entry *river_entry = source.empty() ? nullptr : FindEntry(river, "", false);
			if (river_entry)
				river_entry->overflow = true;
		}
		if (entry) {
			if (!update.phase.empty())
				Copy(entry->phase, sizeof(entry->phase), update.phase);
			if (update.docs_copied)
				entry->docs_copied = *update.docs_copied;
			if (update.changes_applied)
				entry->changes_applied = *update.changes_applied;
			if (update.last_source_ms)
				entry->last_source_time = MsToTimestamp(*update.last_source_ms);
			if (update.caught_up)
				entry->caught_up = *update.caught_up;
			if (update.error)
				Copy(entry->last_error, sizeof(entry->last_error), *update.error);
			if (update.oplog_margin_s)
				entry->oplog_margin_s = *update.oplog_margin_s;
			if (update.copy_started)
				entry->copy_started = *update.copy_started;
			if (update.copy_total)
				entry->copy_total = *update.copy_total;
			if (update.copy_rate)
				entry->copy_rate = *update.copy_rate;
			if (update.oldest_pending_ms)
				entry->oldest_pending = MsToTimestamp(*update.oldest_pending_ms);
			if (update.newest_seen_ms)
				entry->newest_seen = MsToTimestamp(*update.newest_seen_ms);
			if (update.waiting)
				Copy(entry->waiting, sizeof(entry->waiting), *update.waiting);
			if (update.as_worker)
				entry->pid = MyProcPid;
			entry->updated_at = GetCurrentTimestamp();
		}
		LWLockRelease(table->lock);
		static bool warned = false;
		if (full && !warned) {
			warned = true;
			ereport(WARNING, (errmsg("mongo_river: river \"%s\": the live status table is full "
									 "(mongo_river.max_collections = %d rivers and collections); the status of "
									 "collection \"%s\" and others beyond it is read from the catalog",
									 river.c_str(), table->capacity, source.c_str()),
							  errhint("Raise mongo_river.max_collections (needs a restart).")));
		}
	});
}

void ForgetRiverLive(const std::string &river) {
	if (!table)
		return;
	LWLockAcquire(table->lock, LW_EXCLUSIVE);
	for (int i = 0; i < table->capacity; i++)
		if (table->entries[i].in_use && river == table->entries[i].river)
			table->entries[i].in_use = false;
	LWLockRelease(table->lock);
}

// VisibleRivers lists the rivers whose rows the current user may see: mongo_river.river's read
// policy (_may_see) filters them; a superuser sees every river.
static std::set<std::string> VisibleRivers() {
	pg::SpiConnection spi;
	uint64 rows = pg::SpiExecute("SELECT r.river::text FROM mongo_river.river r", {}, true);
	std::set<std::string> rivers;
	for (uint64 i = 0; i < rows; i++)
		rivers.insert(pg::SpiText(i, 1).value_or(""));
	return rivers;
}

// ReturnVisibleEntries returns one row per entry of the shared-memory table whose river the caller
// may see (last_error can quote a document's values); fill(entry, values, nulls) makes the row.
template <size_t Columns, typename Fill> Datum ReturnVisibleEntries(FunctionCallInfo fcinfo, Fill fill) {
	return pg::Guard([&]() -> Datum {
		std::set<std::string> visible = VisibleRivers();
		pg::Call([&] {
			InitMaterializedSRF(fcinfo, 0);
			ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
			if (!table)
				return;
			LWLockAcquire(table->lock, LW_SHARED);
			for (int i = 0; i < table->capacity; i++) {
				const Entry &e = table->entries[i];
				if (!e.in_use || !visible.count(e.river))
					continue;
				Datum values[Columns];
				bool nulls[Columns] = {};
				fill(e, values, nulls);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
			LWLockRelease(table->lock);
		});
		return Datum(0);
	});
}

} // namespace mongo_river::worker

// mongo_river_live_status() returns the shared-memory table: river, source, phase, docs_copied,
// changes_applied, last_source_time, caught_up, worker_pid, last_error, oplog_margin, updated_at.
MONGO_RIVER_FUNCTION(mongo_river_live_status) {
	using mongo_river::worker::Entry;
	return mongo_river::worker::ReturnVisibleEntries<11>(fcinfo, [](const Entry &e, Datum *values, bool *nulls) {
		values[0] = CStringGetTextDatum(e.river);
		values[1] = CStringGetTextDatum(e.source);
		values[2] = CStringGetTextDatum(e.phase);
		values[3] = Int64GetDatum(e.docs_copied);
		values[4] = Int64GetDatum(e.changes_applied);
		values[5] = TimestampTzGetDatum(e.last_source_time);
		nulls[5] = e.last_source_time == 0;
		values[6] = BoolGetDatum(e.caught_up);
		values[7] = Int32GetDatum(e.pid);
		values[8] = CStringGetTextDatum(e.last_error);
		nulls[8] = e.last_error[0] == '\0';
		if (e.overflow && nulls[8]) {
			values[8] = CStringGetTextDatum(
				psprintf("mongo_river.max_collections (%d) is full: the status of some collections is read "
						 "from the catalog (raise it; needs a restart)",
						 mongo_river::worker::table->capacity));
			nulls[8] = false;
		}
		values[9] = Int64GetDatum(e.oplog_margin_s);
		nulls[9] = e.oplog_margin_s < 0;
		values[10] = TimestampTzGetDatum(e.updated_at);
	});
}

// mongo_river_live_progress() returns the copy progress and stream state of the shared-memory table:
// river, source, copy_started_at, copy_total, copy_rate, oldest_pending, newest_seen, waiting.
MONGO_RIVER_FUNCTION(mongo_river_live_progress) {
	using mongo_river::worker::Entry;
	return mongo_river::worker::ReturnVisibleEntries<8>(fcinfo, [](const Entry &e, Datum *values, bool *nulls) {
		values[0] = CStringGetTextDatum(e.river);
		values[1] = CStringGetTextDatum(e.source);
		values[2] = TimestampTzGetDatum(e.copy_started);
		nulls[2] = e.copy_started == 0;
		values[3] = Int64GetDatum(e.copy_total);
		nulls[3] = e.copy_total < 0;
		values[4] = Float8GetDatum(e.copy_rate);
		nulls[4] = e.copy_rate < 0;
		values[5] = TimestampTzGetDatum(e.oldest_pending);
		nulls[5] = e.oldest_pending == 0;
		values[6] = TimestampTzGetDatum(e.newest_seen);
		nulls[6] = e.newest_seen == 0;
		values[7] = CStringGetTextDatum(e.waiting);
		nulls[7] = e.waiting[0] == '\0';
	});
}
