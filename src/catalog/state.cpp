// state.cpp: the worker's writes to progress, mapping_state and rejects.
#include "mongo_river/catalog/state.hpp"

#include <bson/bson.h>

#include "mongo_river/catalog/identity.hpp"

#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/worker/live_status.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/timestamp.h"
}

namespace mongo_river::catalog {

namespace {

// IdElement returns the bytes of the _id element of BSON document raw (type, name and value), or ""
// (no _id, or not BSON).
std::string IdElement(const std::string &raw) {
	bson_t doc;
	bson_iter_t iter;
	if (raw.size() < 5 || !bson_init_static(&doc, reinterpret_cast<const uint8_t *>(raw.data()), raw.size()) ||
		!bson_iter_init_find(&iter, &doc, "_id"))
		return {};
	return std::string(reinterpret_cast<const char *>(iter.raw) + iter.off, iter.next_off - iter.off);
}

pg::SpiArg Name(const std::string &value) {
	return {NAMEOID, pg::NameDatum(value)};
}

pg::SpiArg Text(const std::string &value) {
	return {TEXTOID, pg::TextDatum(value)};
}

pg::SpiArg OptionalText(const std::string &value) {
	if (value.empty())
		return {TEXTOID, std::nullopt};
	return Text(value);
}

pg::SpiArg Bytes(const std::string &value) {
	return {BYTEAOID, pg::Call([&] {
				bytea *result = static_cast<bytea *>(palloc(VARHDRSZ + value.size()));
				SET_VARSIZE(result, VARHDRSZ + value.size());
				memcpy(VARDATA(result), value.data(), value.size());
				return PointerGetDatum(result);
			})};
}

// Notify sends NOTIFY mongo_river with a JSON payload describing an event of a river (delivered at
// commit, with the change it describes). Anyone who can connect may LISTEN, so the payload holds no
// document content and no error text (which may quote values): river, source, event, phase, and a
// detail only for events whose detail is ours (the oplog margin).
void Notify(const std::string &river, const std::string &source, const std::string &event, const std::string &phase,
			const std::string &detail) { // secrets: detail is dropped unless the event is oplog_margin
	pg::SpiExecute("SELECT pg_notify('mongo_river', json_strip_nulls(json_build_object('river', $1::text, "
				   "'source', $2, 'event', $3, 'phase', $4, 'detail', $5))::text)",
				   {Name(river), OptionalText(source), Text(event), OptionalText(phase),
					OptionalText(event == "oplog_margin" ? detail : std::string())}); // secrets
}

// MarkReject sets the mapping's last_reject_at and, with count, adds one to its rejects (inside an
// SPI connection, as the catalog's owner).
void MarkReject(const std::string &river, const std::string &source, bool count) {
	pg::SpiExecute(std::string("UPDATE mongo_river.mapping_state SET ") + (count ? "rejects = rejects + 1, " : "") +
					   "last_reject_at = clock_timestamp() WHERE river = $1 AND source = $2",
				   {Name(river), Text(source)});
}

} // namespace

void NotifyEvent(const std::string &river, const std::string &source, const std::string &event,
				 const std::string &detail) {
	pg::SpiConnection spi;
	Notify(river, source, event, "", detail);
}

void NotifyPhase(const std::string &river, const std::string &source, const std::string &phase,
				 const std::string &error, bool live) {
	pg::SpiConnection spi;
	Notify(river, source, "phase", phase, error);
	if (live) {
		worker::LiveUpdate update;
		update.phase = phase;
		update.error = error;
		worker::ReportLive(river, source, update);
	}
	if (source.empty())
		ereport(LOG, (errmsg("mongo_river: river \"%s\" is now in phase %s%s%s", river.c_str(), phase.c_str(),
							 error.empty() ? "" : ": ", error.c_str())));
	else
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\" is now in phase %s%s%s", river.c_str(),
							 source.c_str(), phase.c_str(), error.empty() ? "" : ": ", error.c_str())));
}

bool SavePosition(const std::string &river, const std::string &river_id, const std::string &position_json,
				  uint64_t reached, bool caught_up) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	// The id check is in the statement itself: a river dropped (and created again) after an earlier
	// check leaves no row to update here, under any snapshot (a concurrently deleted row is skipped).
	return pg::SpiExecute("UPDATE mongo_river.progress p SET position = $2, reached = $3, caught_up = $4,"
						  " updated_at = now() FROM mongo_river.river r"
						  " WHERE p.river = $1 AND r.river = p.river AND r.id = $5::uuid",
						  {Name(river),
						   Text(position_json),
						   {INT8OID, Int64GetDatum(int64(reached))},
						   {BOOLOID, BoolGetDatum(caught_up)},
						   Text(river_id)}) > 0;
}

bool RiverIs(const std::string &river, const std::string &river_id) {
	pg::SpiConnection spi;
	return pg::SpiExecute("SELECT 1 FROM mongo_river.river WHERE river = $1 AND id = $2::uuid",
						  {Name(river), Text(river_id)}, true) > 0;
}

void SaveCatchUp(const std::string &river, const std::string &source, uint64_t cut, bool done) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	pg::SpiExecute("UPDATE mongo_river.mapping_state SET cut = $3, catch_up = NOT $4, updated_at = now()"
				   " WHERE river = $1 AND source = $2",
				   {Name(river), Text(source), {INT8OID, Int64GetDatum(int64(cut))}, {BOOLOID, BoolGetDatum(done)}});
}

void SetRiverPhase(const std::string &river, const std::string &phase, const std::string &error) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	uint64 changed = pg::SpiExecute(
		"UPDATE mongo_river.progress SET phase = $2, last_error = $3, updated_at = now()"
		" WHERE river = $1 AND (phase, coalesce(last_error, '')) IS DISTINCT FROM ($2, coalesce($3, ''))",
		{Name(river), Text(phase), OptionalText(error)});
	if (changed)
		NotifyPhase(river, "", phase, error);
}

void AddMappingProgress(const std::string &river, const std::string &source, const MappingProgress &progress) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	std::optional<Datum> wall;
	if (progress.last_wall_ms)
		wall = TimestampTzGetDatum(time_t_to_timestamptz(0) + *progress.last_wall_ms * 1000);
	pg::SpiExecute("UPDATE mongo_river.mapping_state SET changes_applied = changes_applied + $3,"
				   " last_source_time = coalesce($4, last_source_time), updated_at = now()"
				   " WHERE river = $1 AND source = $2",
				   {Name(river), Text(source), {INT8OID, Int64GetDatum(progress.changes)}, {TIMESTAMPTZOID, wall}});
}

bool SaveCopyProgress(const std::string &river, const std::string &source, const std::string &last_id, int64_t copied,
					  const std::string &phase, std::optional<uint64_t> cut, TimestampTz started,
					  const std::string &previous) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	pg::SpiArg last = last_id.empty() ? pg::SpiArg{BYTEAOID, std::nullopt} : Bytes(last_id);
	pg::SpiArg new_cut{INT8OID, std::nullopt};
	if (cut)
		new_cut.value = Int64GetDatum(int64(*cut));
	return pg::SpiExecute("UPDATE mongo_river.mapping_state SET copy_last_id = $3, docs_copied = docs_copied + $4,"
						  " phase = $5, cut = coalesce($6, cut), catch_up = catch_up AND $6 IS NULL, updated_at = now()"
						  " WHERE river = $1 AND source = $2 AND copy_started_at IS NOT DISTINCT FROM $7"
						  " AND copy_last_id IS NOT DISTINCT FROM $8",
						  {Name(river),
						   Text(source),
						   last,
						   {INT8OID, Int64GetDatum(copied)},
						   Text(phase),
						   new_cut,
						   started ? pg::SpiArg{TIMESTAMPTZOID, TimestampTzGetDatum(started)}
								   : pg::SpiArg{TIMESTAMPTZOID, std::nullopt},
						   previous.empty() ? pg::SpiArg{BYTEAOID, std::nullopt} : Bytes(previous)}) > 0;
}

void StartCopy(const std::string &river, const std::string &source, int64_t total, TimestampTz started) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	pg::SpiExecute("UPDATE mongo_river.mapping_state SET docs_copied = 0, copy_total = $3, copy_started_at = $4,"
				   " updated_at = now() WHERE river = $1 AND source = $2",
				   {Name(river),
					Text(source),
					total < 0 ? pg::SpiArg{INT8OID, std::nullopt} : pg::SpiArg{INT8OID, Int64GetDatum(total)},
					{TIMESTAMPTZOID, TimestampTzGetDatum(started)}});
}

void SetMappingPhase(const std::string &river, const std::string &source, const std::string &phase,
					 const std::string &error) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	uint64 changed =
		pg::SpiExecute("UPDATE mongo_river.mapping_state SET phase = $3, last_error = $4, updated_at = now()"
					   " WHERE river = $1 AND source = $2 AND (phase, coalesce(last_error, ''))"
					   " IS DISTINCT FROM ($3, coalesce($4, ''))",
					   {Name(river), Text(source), Text(phase), OptionalText(error)});
	if (changed)
		NotifyPhase(river, source, phase, error);
}

void BeginResync(const std::string &river) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	pg::SpiExecute("DELETE FROM mongo_river.resync_seen WHERE river = $1", {Name(river)});
	pg::SpiExecute("UPDATE mongo_river.mapping_state SET phase = 'resync', copy_last_id = NULL, docs_copied = 0,"
				   " copy_total = NULL, copy_started_at = NULL, updated_at = now()"
				   " WHERE river = $1 AND phase NOT IN ('stopped', 'error')",
				   {Name(river)});
}

bool AddReject(const std::string &river, const Reject &reject) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	pg::SpiArg document{JSONBOID, std::nullopt};
	if (reject.document_json) {
		try {
			document.value = pg::JsonbDatum(*reject.document_json);
		} catch (const pg::PgError &) {
			// jsonb refused it (e.g. \u0000): the raw BSON is kept in any case.
		}
	}
	const pg::SpiArg raw = reject.raw.empty() ? pg::SpiArg{BYTEAOID, std::nullopt} : Bytes(reject.raw);
	const pg::SpiArg document_id = reject.has_id ? Text(reject.document_id) : OptionalText(reject.document_id);
	// A resync reads each document's current state: one its copy rejects again replaces the reject
	// the copy before recorded for it (the same _id: two _ids can share a document_id text), with its
	// reason and time; a document with a reject kept (of a copy, or of a change) is not counted again.
	bool again = false;
	bool replaced = false;
	if (reject.replace_copy) {
		const uint64 found = pg::SpiExecute(
			"SELECT id, raw, operation = 'copy' FROM mongo_river.rejects WHERE river = $1 AND source = $2"
			" AND document_id IS NOT DISTINCT FROM $3 AND raw IS NOT NULL",
			{Name(river), Text(reject.source), document_id}, true);
		const std::string id = IdElement(reject.raw);
		std::vector<int64> copies;
		for (uint64 i = 0; i < found && !id.empty(); i++) {
			bytea *held = pg::Call([&] { return DatumGetByteaPP(*pg::SpiDatum(i, 2)); });
			if (IdElement(std::string(VARDATA_ANY(held), VARSIZE_ANY_EXHDR(held))) != id)
				continue;
			again = true;
			if (DatumGetBool(*pg::SpiDatum(i, 3)))
				copies.push_back(DatumGetInt64(*pg::SpiDatum(i, 1)));
		}
		for (int64 reject_id : copies)
			replaced |= pg::SpiExecute("UPDATE mongo_river.rejects SET document = $2, raw = $3, error = $4,"
									   " created_at = now() WHERE id = $1",
									   {{INT8OID, Int64GetDatum(reject_id)}, document, raw, Text(reject.error)}) > 0;
	}
	if (!replaced)
		pg::SpiExecute(
			"INSERT INTO mongo_river.rejects (river, source, document_id, operation, document, raw, error)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7)",
			{Name(river), Text(reject.source), document_id, Text(reject.operation), document, raw, Text(reject.error)});
	MarkReject(river, reject.source, !again);
	Notify(river, reject.source, "reject", "", reject.document_id + ": " + reject.error);
	return !again;
}

void CountReject(const std::string &river, const std::string &source) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	MarkReject(river, source, true);
}

uint64_t DropCopiedRejects(const std::string &river, const std::string &source) {
	AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	pg::SpiConnection spi;
	// The copy began at copy_started_at; what it rejected again has a later created_at (see AddReject).
	return pg::SpiExecute("DELETE FROM mongo_river.rejects r USING mongo_river.mapping_state m"
						  " WHERE r.river = $1 AND r.source = $2 AND r.operation = 'copy'"
						  " AND m.river = r.river AND m.source = r.source AND r.created_at < m.copy_started_at",
						  {Name(river), Text(source)});
}

} // namespace mongo_river::catalog
