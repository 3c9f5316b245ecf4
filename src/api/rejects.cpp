// rejects.cpp: retry_rejects(): re-apply rejected changes from the documents' current state.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/api/checks.hpp"
#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/catalog/lock.hpp"
#include "mongo_river/catalog/river.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/pg/transaction.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

namespace mongo_river::api {

namespace {

// RejectRow is one reject to retry.
struct RejectRow {
	int64 id;
	std::string source;
	std::optional<std::string> document_id;
	std::string raw;
};

// IdAt is true when raw holds a value at path (dotted) whose text is document_id; found points to it.
bool IdAt(const bson_t *raw, const char *path, const std::string &document_id, bson_iter_t *found) {
	bson_iter_t iter;
	return bson_iter_init(&iter, raw) && bson_iter_find_descendant(&iter, path, found) &&
		   convert::DocumentIdText(*bson_iter_value(found)) == document_id;
}

// RejectedId finds in raw the _id of the document a reject is about: the value whose text is the
// reject's document_id, among raw's own _id (a document, or a key), its documentKey._id (an
// unreadable change event: its own _id is a resume token, review 27) and its o2._id or o._id (an
// unreadable oplog entry). False when none is: the reject cannot be retried.
bool RejectedId(const bson_t *raw, const std::optional<std::string> &document_id, bson_iter_t *found) {
	if (!document_id)
		return false;
	bson_iter_t probe;
	bson_iter_t token;
	const bool event = bson_iter_init_find(&probe, raw, "operationType") ||
					   (bson_iter_init_find(&probe, raw, "_id") && BSON_ITER_HOLDS_DOCUMENT(&probe) &&
						bson_iter_recurse(&probe, &token) && bson_iter_find(&token, "_data"));
	if (event)
		return IdAt(raw, "documentKey._id", *document_id, found);
	const bool entry = bson_iter_init_find(&probe, raw, "op") && bson_iter_init_find(&probe, raw, "ns") &&
					   bson_iter_init_find(&probe, raw, "ts");
	if (entry)
		return IdAt(raw, "o2._id", *document_id, found) || IdAt(raw, "o._id", *document_id, found);
	return IdAt(raw, "_id", *document_id, found);
}

// RetryOne re-applies one reject from its document's current state; true when it is resolved
// (applied, or the document is gone and so is its row). A reject that still fails keeps its row,
// with the new reason.
bool RetryOne(mongo::Source &source, apply::MappingWriter &writer, const RejectRow &reject) {
	mongo::Bson raw(bson_new_from_data(reinterpret_cast<const uint8_t *>(reject.raw.data()), reject.raw.size()));
	bson_iter_t iter;
	if (!raw || !RejectedId(raw.get(), reject.document_id, &iter))
		return false;
	const bson_value_t *id = bson_iter_value(&iter);
	mongo::Bson current = source.FindById(writer.Row().db, writer.Row().coll, id);
	// At the source's time now: in history mode the version is the latest (review 27: at 0, the
	// latest view kept the stale one).
	apply::ChangeInfo change{"retry", source.OperationTime().AsUint64(), std::nullopt,
							 "retry:" + std::to_string(reject.id)};
	std::string failure;
	std::optional<pg::PgError> error = pg::TrySubtransaction([&] {
		if (!current) {
			writer.Delete(writer.KeyFromId(id), change);
			return;
		}
		convert::ConvertedDocument converted = writer.Convert(*current);
		if (!converted.errors.empty()) {
			failure = converted.errors.front().Message();
			return;
		}
		writer.Upsert(converted, change);
	});
	if (error)
		failure = error->what();
	catalog::AsCatalogOwner as_catalog_owner; // secrets: admins hold no DML on the catalog
	if (!failure.empty()) {
		pg::SpiExecute("UPDATE mongo_river.rejects SET error = $2 WHERE id = $1",
					   {{INT8OID, Int64GetDatum(reject.id)}, {TEXTOID, pg::TextDatum("retried: " + failure)}});
		return false;
	}
	pg::SpiExecute("DELETE FROM mongo_river.rejects WHERE id = $1", {{INT8OID, Int64GetDatum(reject.id)}});
	return true;
}

} // namespace

} // namespace mongo_river::api

// mongo_river_retry_rejects(river name, id bigint) re-applies rejected changes (one, or all of the
// river's) by reading each document's current state from MongoDB — never replaying an old change
// over a newer one — and returns how many were resolved.
MONGO_RIVER_FUNCTION(mongo_river_retry_rejects) {
	using namespace mongo_river;
	return pg::Guard([&]() -> Datum {
		if (PG_ARGISNULL(0))
			throw Error("22004", "retry_rejects: argument river must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		std::optional<int64> only_id;
		if (!PG_ARGISNULL(1))
			only_id = PG_GETARG_INT64(1);
		api::RequireRiverOwner("retry_rejects", river);
		pg::EnsureMongocInitialized();
		int64 resolved = 0;
		pg::SpiConnection spi;
		catalog::RiverRow row = catalog::LoadRiver(river);
		// The river's user tables are written as its owner, never as the caller (a superuser's call
		// must not run the owner's triggers with the superuser's rights).
		catalog::AsRole as_owner(row.owner);
		uint64 count =
			pg::SpiExecute("SELECT id, source, raw, document_id FROM mongo_river.rejects WHERE river = $1 AND "
						   "($2::bigint IS NULL OR id = $2)"
						   " AND raw IS NOT NULL ORDER BY id",
						   {{NAMEOID, pg::NameDatum(river)},
							{INT8OID, only_id ? std::optional<Datum>(Int64GetDatum(*only_id)) : std::nullopt}});
		std::vector<api::RejectRow> rejects;
		for (uint64 i = 0; i < count; i++) {
			bytea *raw = pg::Call([&] { return DatumGetByteaPP(*pg::SpiDatum(i, 3)); });
			rejects.push_back({std::stoll(pg::SpiText(i, 1).value_or("0")), pg::SpiText(i, 2).value_or(""),
							   pg::SpiText(i, 4), std::string(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw))});
		}
		if (only_id && rejects.empty())
			throw Error(sqlstate::kUndefinedObject,
						"retry_rejects: river \"" + river + "\" has no reject " + std::to_string(*only_id), {},
						"SELECT id FROM mongo_river.rejects WHERE river = '" + river + "' lists them.");
		if (rejects.empty())
			return Int64GetDatum(0);
		std::unique_ptr<mongo::Source> opened = catalog::OpenRiverSource(row); // secrets
		mongo::Source &source = *opened;
		catalog::LockRiver(river);
		std::map<std::string, std::unique_ptr<apply::MappingWriter>> writers;
		for (const catalog::MappingRow &mapping : row.mappings)
			writers[mapping.source] = std::make_unique<apply::MappingWriter>(mapping);
		for (const api::RejectRow &reject : rejects) {
			auto writer = writers.find(reject.source);
			if (writer == writers.end()) {
				// Its collection is not mapped (any more), or unknown (an event without ns): kept, saying so.
				catalog::AsCatalogOwner as_catalog_owner;
				pg::SpiExecute("UPDATE mongo_river.rejects SET error = $2 || error WHERE id = $1 AND error NOT LIKE "
							   "'not retried: %'",
							   {{INT8OID, Int64GetDatum(reject.id)},
								{TEXTOID, pg::TextDatum("not retried: \"" + reject.source +
														"\" is not a mapped collection; " + "was: ")}});
				continue;
			}
			if (api::RetryOne(source, *writer->second, reject))
				resolved++;
		}
		return Int64GetDatum(resolved);
	});
}
