// verify.cpp: verify(): compare MongoDB with the tables, repair. It runs in the calling backend;
// its writes take the river's advisory lock, as the worker's batches do, and re-read each document
// from MongoDB under it, so a repair never writes a document older than what the worker has applied.
// One document that cannot be converted or written never fails the whole run: it is reported (and,
// when repairing, recorded in rejects) and the others are repaired.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mongo_river/api/checks.hpp"
#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/apply/mapping_writer.hpp"
#include "mongo_river/catalog/lock.hpp"
#include "mongo_river/catalog/river.hpp"
#include "mongo_river/catalog/state.hpp"
#include "mongo_river/convert/convert.hpp"
#include "mongo_river/convert/same_value.hpp"
#include "mongo_river/convert/types.hpp"
#include "mongo_river/mapping/mapping.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/copy.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/pg/transaction.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
}

namespace mongo_river::api {

namespace {

// kVerifyBatch is how many documents verify reads from MongoDB at a time.
constexpr size_t kVerifyBatch = 1000;

// Finding is one row of verify's result.
struct Finding {
	std::string source;
	std::string document_id;
	std::string problem;
	bool repaired = false;
	mongo::Bson id;           // {_id: value}, to re-read and repair
	bool no_document = false; // about the whole mapping: document_id is NULL
};

// kCannotConvert opens the problem of a document whose rows cannot be made.
constexpr const char *kCannotConvert = "cannot be converted: ";

// IdOf returns the {_id: value} document of doc.
mongo::Bson IdOf(const bson_t *doc) {
	bson_iter_t iter;
	if (!doc || !bson_iter_init_find(&iter, doc, "_id"))
		return nullptr;
	return mongo::WrapValue("_id", bson_iter_value(&iter));
}

const bson_value_t *IdValue(const bson_t *id_doc) {
	static thread_local bson_iter_t iter;
	if (!id_doc || !bson_iter_init_find(&iter, id_doc, "_id"))
		return nullptr;
	return bson_iter_value(&iter);
}

// Checker compares one mapping's documents with its rows.
class Checker {
public:
	Checker(mongo::Source &source, const catalog::MappingRow &row) : source_(source), writer_(row) {}

	// Check compares doc with its rows; a finding when they differ.
	std::optional<Finding> Check(const bson_t &doc) {
		convert::ConvertedDocument converted = writer_.Convert(doc);
		Finding finding{writer_.Row().source, convert::DocumentIdText(&doc), {}, false, IdOf(&doc)};
		std::string expected;
		if (std::optional<std::string> refused = Render(converted, &expected)) {
			finding.problem = kCannotConvert + *refused;
			return finding;
		}
		std::optional<std::string> stored = writer_.StoredText(converted.key);
		if (!stored)
			finding.problem = "missing";
		else if (!convert::SameUpToDoubleText(*stored, expected))
			finding.problem = "different";
		else
			return std::nullopt;
		return finding;
	}

	// Render renders the rows a converted document gives into *text, or says why it cannot: the
	// converter's errors, or the first value its column's type refuses (numeric overflow, a too
	// long varchar, a domain's check), naming the column.
	std::optional<std::string> Render(const convert::ConvertedDocument &converted, std::string *text) {
		if (!converted.errors.empty()) {
			std::string message;
			for (const convert::ConversionError &error : converted.errors)
				message += (message.empty() ? "" : "; ") + error.Message();
			return message;
		}
		try {
			// Only type input and output functions run here (no lock, no buffer), so their error
			// is caught without a subtransaction; the costlier search for the column runs in one.
			*text = writer_.DocumentText(converted);
			return std::nullopt;
		} catch (const pg::PgError &error) {
			return writer_.RefusedValue(converted).value_or(error.what());
		}
	}

	// StillWrong re-reads a finding's document and row (fresh snapshots) and tells whether they
	// still disagree, so that changes the worker had not applied yet are not reported.
	bool StillWrong(const Finding &finding) {
		mongo::Bson doc = source_.FindById(writer_.Row().db, writer_.Row().coll, IdValue(finding.id.get()));
		if (!doc) {
			if (finding.problem != "extra")
				return false;
			convert::Value key = writer_.KeyFromId(IdValue(finding.id.get()));
			return writer_.StoredText(key).has_value();
		}
		return Check(*doc).has_value();
	}

	// Repair writes the document's current state (or deletes its row when it is gone). A document
	// whose rows cannot be made or written is recorded in rejects (once: not again while a reject
	// of it is kept) and left as it is; the finding says why.
	void Repair(const std::string &river, Finding &finding) {
		mongo::Bson doc = source_.FindById(writer_.Row().db, writer_.Row().coll, IdValue(finding.id.get()));
		apply::ChangeInfo change{"repair", 0, std::nullopt, "repair"};
		if (!doc) {
			std::optional<pg::PgError> error =
				pg::TrySubtransaction([&] { writer_.Delete(writer_.KeyFromId(IdValue(finding.id.get())), change); });
			if (!error) {
				finding.repaired = true;
				return;
			}
			finding.problem = std::string("cannot be deleted: ") + error->what();
			return;
		}
		convert::ConvertedDocument converted = writer_.Convert(*doc);
		std::string text;
		if (std::optional<std::string> refused = Render(converted, &text)) {
			finding.problem = kCannotConvert + *refused;
			Reject(river, *doc, finding.problem);
			return;
		}
		std::optional<pg::PgError> error = pg::TrySubtransaction([&] { writer_.Upsert(converted, change); });
		if (error) {
			finding.problem = std::string("cannot be written: ") + error->what();
			Reject(river, *doc, finding.problem);
			return;
		}
		finding.repaired = true;
	}

	apply::MappingWriter &Writer() { return writer_; }

private:
	// Reject records doc in rejects with error, unless a reject of the same document is kept.
	void Reject(const std::string &river, const bson_t &doc, const std::string &error) {
		catalog::Reject reject;
		reject.source = writer_.Row().source;
		reject.document_id = convert::DocumentIdText(&doc);
		reject.has_id = true; // (a document verify read: it has an _id)
		if (pg::SpiExecute("SELECT 1 FROM mongo_river.rejects WHERE river = $1 AND source = $2 AND document_id = $3",
						   {{TEXTOID, pg::TextDatum(river)},
							{TEXTOID, pg::TextDatum(reject.source)},
							{TEXTOID, pg::TextDatum(reject.document_id)}}) > 0)
			return;
		reject.operation = "verify";
		try {
			reject.document_json = convert::DocumentJson(doc);
		} catch (const Error &) {
			// jsonb cannot hold it (NUL characters, invalid UTF-8): raw keeps it.
		}
		reject.raw.assign(reinterpret_cast<const char *>(bson_get_data(&doc)), doc.len);
		reject.error = error;
		catalog::AddReject(river, reject);
	}

	mongo::Source &source_;
	apply::MappingWriter writer_;
};

// IdsForKey returns the _id values ({_id: v}) a key column's text can stand for: the key's own
// conversion read backwards (a text key holds strings as themselves and ObjectIds as hex, so a
// 24-hex-digit text may be either; extjson keys are Extended JSON; numbers, uuids, dates).
std::vector<mongo::Bson> IdsForKey(apply::MappingWriter &writer, const std::string &text) {
	const mapping::Mapping &mapping = writer.Converter().Mapping();
	const mapping::Column *pk = mapping::FindColumn(mapping.columns, mapping.pk);
	convert::TargetType type = convert::ClassifyType(pk->type);
	std::vector<mongo::Bson> ids;
	auto add = [&](mongo::Bson doc) {
		if (doc)
			ids.push_back(std::move(doc));
	};
	if (pk->format == mapping::Format::kExtendedJson) {
		try {
			add(mongo::FromJson("{\"_id\": " + text + "}", "key"));
		} catch (const Error &) {
		}
		return ids;
	}
	mongo::Bson doc = mongo::NewBson();
	switch (type.kind) {
	case convert::TargetKind::kSmallint:
	case convert::TargetKind::kInteger:
	case convert::TargetKind::kBigint:
		BSON_APPEND_INT64(doc.get(), "_id", std::stoll(text));
		add(std::move(doc));
		break;
	case convert::TargetKind::kReal:
	case convert::TargetKind::kDouble:
	case convert::TargetKind::kNumeric:
		BSON_APPEND_DOUBLE(doc.get(), "_id", std::stod(text));
		add(std::move(doc));
		break;
	default: {
		if (text.size() == 24 && bson_oid_is_valid(text.c_str(), text.size())) {
			bson_oid_t oid;
			bson_oid_init_from_string(&oid, text.c_str());
			mongo::Bson as_oid = mongo::NewBson();
			BSON_APPEND_OID(as_oid.get(), "_id", &oid);
			add(std::move(as_oid));
		}
		BSON_APPEND_UTF8(doc.get(), "_id", text.c_str());
		add(std::move(doc));
		break;
	}
	}
	return ids;
}

// VerifyMapping checks one mapping: every document (or a sample), then rows without a document.
void VerifyMapping(mongo::Source &source, Checker &checker, const catalog::MappingRow &row,
				   std::optional<int> sample_size, std::vector<Finding> *findings) {
	apply::MappingWriter &writer = checker.Writer();
	std::vector<Finding> suspects;
	pg::SpiExecute("TRUNCATE pg_temp.mongo_river_verify_seen"); // made by verify() before AsRole
	auto check_batch = [&](const std::vector<mongo::Bson> &docs) {
		for (const mongo::Bson &doc : docs) {
			if (std::optional<Finding> finding = checker.Check(*doc))
				suspects.push_back(std::move(*finding));
			bson_iter_t iter;
			if (bson_iter_init_find(&iter, doc.get(), "_id")) {
				try {
					convert::Value key = writer.KeyFromId(bson_iter_value(&iter));
					pg::SpiExecute("INSERT INTO pg_temp.mongo_river_verify_seen VALUES ($1) ON CONFLICT DO NOTHING",
								   {{TEXTOID, pg::TextDatum(convert::ValueText(key))}});
				} catch (const convert::ConversionError &) {
				}
			}
		}
	};
	std::string extra_sql = "SELECT t." + writer.KeyColumn() + "::text FROM " + writer.TargetName() + " t";
	if (!sample_size) {
		mongo::CollectionScan scan(source, row.db, row.coll, nullptr, int32_t(kVerifyBatch));
		while (true) {
			std::vector<mongo::Bson> docs = scan.NextBatch(kVerifyBatch);
			if (docs.empty())
				break;
			check_batch(docs);
			CHECK_FOR_INTERRUPTS();
		}
		extra_sql += " WHERE NOT EXISTS (SELECT 1 FROM pg_temp.mongo_river_verify_seen s WHERE s.key = t." +
					 writer.KeyColumn() + "::text)";
	} else {
		check_batch(source.Sample(row.db, row.coll, *sample_size));
		extra_sql += " ORDER BY random() LIMIT " + std::to_string(*sample_size);
	}
	// Rows without a document: in full mode those whose key was not seen, in sample mode a sample
	// of rows; each is confirmed by looking the document up.
	uint64 candidates = pg::SpiExecute(extra_sql);
	std::vector<std::string> keys;
	for (uint64 i = 0; i < candidates; i++)
		keys.push_back(pg::SpiText(i, 1).value_or(""));
	for (const std::string &key_text : keys) {
		// A row is extra only if no document has its key: every _id the key can stand for is tried.
		bool exists = false;
		for (mongo::Bson &id : IdsForKey(writer, key_text))
			if (source.FindById(row.db, row.coll, IdValue(id.get()))) {
				exists = true;
				break;
			}
		if (exists)
			continue;
		std::vector<mongo::Bson> ids = IdsForKey(writer, key_text);
		suspects.push_back(Finding{row.source, key_text, "extra", false, ids.empty() ? nullptr : std::move(ids[0])});
	}
	for (Finding &finding : suspects)
		if (checker.StillWrong(finding))
			findings->push_back(std::move(finding));
}

} // namespace

} // namespace mongo_river::api

// mongo_river_verify(river name, source text, sample_size int, repair boolean) re-reads documents
// from MongoDB and compares them with their rows through the mapping: missing, extra and different
// rows (child tables included); with repair, fixes them.
MONGO_RIVER_FUNCTION(mongo_river_verify) {
	using namespace mongo_river;
	return pg::Guard([&]() -> Datum {
		if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
			throw Error("22004", std::string("verify: argument ") + (PG_ARGISNULL(0) ? "river" : "repair") +
									 " must not be NULL");
		std::string river = NameStr(*PG_GETARG_NAME(0));
		std::optional<std::string> only_source;
		if (!PG_ARGISNULL(1))
			only_source = pg::TextArg(PG_GETARG_DATUM(1));
		std::optional<int> sample_size;
		if (!PG_ARGISNULL(2)) {
			sample_size = PG_GETARG_INT32(2);
			if (*sample_size < 1)
				throw Error(sqlstate::kInvalidParameterValue, "verify: sample_size must be at least 1", {},
							"Leave it NULL to verify every document.");
		}
		bool repair = PG_GETARG_BOOL(3);
		api::RequireRiverOwner("verify", river);
		pg::EnsureMongocInitialized();
		std::vector<api::Finding> findings;
		{
			pg::SpiConnection spi;
			catalog::RiverRow row = catalog::LoadRiver(river);
			// The set of keys seen, made as the caller: the owner's code runs as a security-restricted
			// operation, which may not create temporary tables.
			pg::SpiExecute("CREATE TEMP TABLE IF NOT EXISTS mongo_river_verify_seen (key text PRIMARY KEY)"
						   " ON COMMIT DROP");
			pg::SpiExecute("SELECT pg_catalog.format('GRANT ALL ON TABLE pg_temp.mongo_river_verify_seen TO %s',"
						   " $1::pg_catalog.regrole)",
						   {{OIDOID, ObjectIdGetDatum(row.owner)}});
			pg::SpiExecute(pg::SpiText(0, 1).value_or("SELECT 1"));
			// Reads and repairs the river's user tables as its owner, never as the caller (a
			// superuser's call must not run the owner's triggers with the superuser's rights).
			catalog::AsRole as_owner(row.owner);
			bool found = !only_source;
			std::unique_ptr<mongo::Source> opened = catalog::OpenRiverSource(row); // secrets
			mongo::Source &source = *opened;
			std::vector<std::unique_ptr<api::Checker>> checkers;
			for (const catalog::MappingRow &mapping : row.mappings) {
				if (only_source && mapping.source != *only_source)
					continue;
				found = true;
				if (mapping.phase == "pending" || mapping.phase == "initial_copy") {
					// Its rows are still being copied: every document not copied yet would show as missing.
					api::Finding still;
					still.source = mapping.source;
					still.problem = "not verified: the collection is still being copied (phase " + mapping.phase +
									", " + std::to_string(mapping.docs_copied) + " documents copied)";
					still.no_document = true;
					findings.push_back(std::move(still));
					continue;
				}
				if (mapping.mode == "history") {
					ereport(NOTICE, (errmsg("verify: collection \"%s\" is in history mode: not verified",
											mapping.source.c_str())));
					continue;
				}
				checkers.push_back(std::make_unique<api::Checker>(source, mapping));
				api::VerifyMapping(source, *checkers.back(), mapping, sample_size, &findings);
			}
			if (!found)
				throw Error(sqlstate::kUndefinedObject,
							"verify: collection \"" + *only_source + "\" is not mapped by river \"" + river + "\"", {},
							"SELECT source FROM mongo_river.status lists the mapped collections.");
			if (repair && !findings.empty()) {
				catalog::LockRiver(river);
				for (api::Finding &finding : findings)
					for (auto &checker : checkers)
						if (checker->Writer().Row().source == finding.source && finding.id)
							checker->Repair(river, finding);
			}
		}
		ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
		pg::Call([&] { InitMaterializedSRF(fcinfo, 0); });
		for (const api::Finding &finding : findings) {
			Datum values[4] = {pg::TextDatum(finding.source), pg::TextDatum(finding.document_id),
							   pg::TextDatum(finding.problem), BoolGetDatum(finding.repaired)};
			bool nulls[4] = {false, finding.no_document, false, false};
			pg::Call([&] { tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls); });
		}
		return Datum(0);
	});
}
