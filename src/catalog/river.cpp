// river.cpp: read rivers and their mappings from the catalog tables.
#include "mongo_river/catalog/river.hpp"

#include "mongo_river/error.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/timestamp.h"
#include "utils/builtins.h"
}

namespace mongo_river::catalog {

namespace {

// kDigestSql is the declaration digest: everything the worker reads that a user can change.
constexpr const char *kDigestSql =
	"SELECT md5(r.id::text || r.uri || r.options::text || r.enabled::text || coalesce(("
	"  SELECT string_agg(m.source || m.target::oid::text || m.mapping::text || m.options::text, ',' ORDER BY m.source)"
	"  FROM mongo_river.collection_map m WHERE m.river = r.river), '')"
	" || coalesce((SELECT string_agg(d.database || d.options::text || d.unmapped::text, ',' ORDER BY d.database)"
	"     FROM mongo_river.database_map d WHERE d.river = r.river), '')"
	" || (SELECT count(*) FROM mongo_river.mapping_state s"
	"     WHERE s.river = r.river AND s.phase = 'resync' AND s.copy_last_id IS NULL)::text"
	// Each mapping's row identity (xmin; only declarations write collection_map): unmap and map again
	// of the same collection in one transaction changes nothing else (review 26: never copied).
	" || coalesce((SELECT string_agg(m.xmin::text, ',' ORDER BY m.source) FROM mongo_river.collection_map m"
	"     WHERE m.river = r.river), ''))"
	" FROM mongo_river.river r WHERE r.river = $1";

std::string TextOr(uint64 row, int column, const std::string &fallback = {}) {
	return pg::SpiText(row, column).value_or(fallback);
}

} // namespace

std::string RiverDigest(const std::string &name) {
	pg::SpiConnection spi;
	if (pg::SpiExecute(kDigestSql, {{NAMEOID, pg::NameDatum(name)}}, true) == 0)
		return {};
	return TextOr(0, 1);
}

std::vector<std::string> RequestedResyncs(const std::string &name) {
	pg::SpiConnection spi;
	std::vector<std::string> out;
	const uint64 rows = pg::SpiExecute("SELECT source FROM mongo_river.mapping_state"
									   " WHERE river = $1 AND phase = 'resync' AND copy_started_at IS NULL",
									   {{NAMEOID, pg::NameDatum(name)}}, true);
	for (uint64 i = 0; i < rows; i++)
		out.push_back(TextOr(i, 1));
	return out;
}

RiverRow LoadRiver(const std::string &name) {
	pg::SpiConnection spi;
	RiverRow river;
	river.name = name;
	Datum name_datum = pg::NameDatum(name);
	uint64 found = pg::SpiExecute(
		"SELECT r.owner::oid, r.uri, r.enabled, coalesce(r.options->>'capture', 'change_stream'),"
		" coalesce((r.options->>'batch_size')::int, 1000), coalesce((r.options->>'batch_ms')::int, 100),"
		" coalesce((r.options->>'dry_run')::boolean, false), coalesce(r.options->>'on_error', 'reject'),"
		" coalesce(r.options->>'password_file', ''), coalesce(p.position, ''), coalesce(p.phase, 'pending'),"
		" r.id::text, coalesce(p.reached, 0)"
		" FROM mongo_river.river r LEFT JOIN mongo_river.progress p USING (river) WHERE r.river = $1",
		{{NAMEOID, name_datum}}, true);
	if (found == 0)
		throw Error(sqlstate::kUndefinedObject, "river \"" + name + "\" does not exist");
	river.owner = DatumGetObjectId(*pg::SpiDatum(0, 1));
	river.uri = TextOr(0, 2);
	river.enabled = TextOr(0, 3) == "t";
	river.options.capture = TextOr(0, 4);
	river.options.batch_size = std::stoi(TextOr(0, 5));
	river.options.batch_ms = std::stoi(TextOr(0, 6));
	river.options.dry_run = TextOr(0, 7) == "t";
	river.options.on_error = TextOr(0, 8);
	river.options.password_file = TextOr(0, 9);
	river.position_json = TextOr(0, 10);
	river.phase = TextOr(0, 11);
	river.id = TextOr(0, 12);
	river.reached = uint64(std::stoll(TextOr(0, 13, "0")));

	uint64 rows =
		pg::SpiExecute("SELECT m.source, m.source_db, m.source_collection, m.target::oid, m.mapping::text,"
					   " coalesce(m.options->>'mode', 'upsert'), coalesce(s.phase, 'pending'), s.copy_last_id,"
					   " coalesce(s.docs_copied, 0), coalesce(s.changes_applied, 0), coalesce(s.cut, 0),"
					   " coalesce(s.catch_up, false), s.copy_started_at"
					   " FROM mongo_river.collection_map m LEFT JOIN mongo_river.mapping_state s USING (river, source)"
					   " WHERE m.river = $1 ORDER BY m.source",
					   {{NAMEOID, name_datum}}, true);
	for (uint64 row = 0; row < rows; row++) {
		MappingRow mapping;
		mapping.source = TextOr(row, 1);
		mapping.db = TextOr(row, 2);
		mapping.coll = TextOr(row, 3);
		mapping.target = DatumGetObjectId(*pg::SpiDatum(row, 4));
		mapping.mapping_json = TextOr(row, 5);
		mapping.mode = TextOr(row, 6);
		mapping.phase = TextOr(row, 7);
		if (std::optional<Datum> last_id = pg::SpiDatum(row, 8)) {
			bytea *bytes = pg::Call([&] { return DatumGetByteaPP(*last_id); });
			mapping.copy_last_id.assign(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));
		}
		mapping.docs_copied = std::stoll(TextOr(row, 9, "0"));
		mapping.changes_applied = std::stoll(TextOr(row, 10, "0"));
		mapping.cut = uint64(std::stoll(TextOr(row, 11, "0")));
		mapping.catch_up = TextOr(row, 12) == "t";
		if (std::optional<Datum> started = pg::SpiDatum(row, 13))
			mapping.copy_started_at = DatumGetTimestampTz(*started);
		river.mappings.push_back(std::move(mapping));
	}
	uint64 databases = pg::SpiExecute("SELECT database FROM mongo_river.database_map WHERE river = $1 ORDER BY 1",
									  {{NAMEOID, name_datum}}, true);
	for (uint64 row = 0; row < databases; row++)
		river.databases.push_back(TextOr(row, 1));
	river.digest = RiverDigest(name);
	return river;
}

std::vector<LauncherEntry> ListRivers() {
	pg::SpiConnection spi;
	uint64 rows = pg::SpiExecute("SELECT r.river::text, r.owner::oid, r.enabled AND coalesce(p.phase, '') <> 'error',"
								 " r.id::text, a.rolname::text, coalesce(a.rolcanlogin, false)"
								 " FROM mongo_river.river r LEFT JOIN mongo_river.progress p USING (river)"
								 " LEFT JOIN pg_catalog.pg_roles a ON a.oid = r.owner::oid"
								 " ORDER BY r.river",
								 {}, true);
	std::vector<LauncherEntry> result;
	for (uint64 row = 0; row < rows; row++) {
		LauncherEntry entry;
		entry.name = TextOr(row, 1);
		entry.id = TextOr(row, 4);
		entry.owner = DatumGetObjectId(*pg::SpiDatum(row, 2));
		entry.runnable = TextOr(row, 3) == "t";
		entry.owner_name = TextOr(row, 5);
		entry.owner_can_login = TextOr(row, 6) == "t";
		result.push_back(std::move(entry));
	}
	return result;
}

} // namespace mongo_river::catalog
