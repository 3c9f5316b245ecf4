// cut.cpp: what map_collection asks the source at declaration time: the operation time that is a
// copy: false mapping's cut, and whether the collection exists.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"

extern "C" {
#include "utils/builtins.h"
}

using mongo_river::pg::Guard;
using mongo_river::pg::TextArg;

// mongo_river_source_cut(uri text, db text, collection text, required boolean) returns the source's
// operation time (t << 32 | i) read now: a copy: false mapping streams the changes after it. When
// the source answers and db.collection does not exist there, it says so in a NOTICE (the mapping is
// declared all the same: the collection may be created later). When the source cannot be reached it
// returns NULL, or, when required, raises the source's error (08xxx, 28P01) naming the collection.
MONGO_RIVER_FUNCTION(mongo_river_source_cut) {
	return Guard([&]() -> Datum {
		std::string uri = TextArg(PG_GETARG_DATUM(0));
		std::string db = TextArg(PG_GETARG_DATUM(1));
		std::string collection = TextArg(PG_GETARG_DATUM(2));
		bool required = PG_GETARG_BOOL(3);
		mongo_river::pg::EnsureMongocInitialized();
		std::optional<uint64_t> cut;
		bool exists = true;
		// uri is a URI or a river reference ('river:<name>', resolved with its owner's credentials).
		std::unique_ptr<mongo_river::mongo::Source> opened;
		try {
			opened = mongo_river::catalog::OpenSourceFor(uri);
		} catch (const mongo_river::mongo::SourceError &) {
			throw;
		} catch (const std::exception &) {
			if (required)
				throw;
			PG_RETURN_NULL(); // no usable credentials now: say nothing about the collection
		}
		try {
			mongo_river::mongo::Source &source = *opened;
			cut = source.OperationTime().AsUint64();
			try {
				std::vector<std::string> names = source.ListCollections(db, true);
				exists = std::find(names.begin(), names.end(), collection) != names.end();
			} catch (const mongo_river::mongo::SourceError &) {
				// Not listable (e.g. no listCollections privilege): say nothing.
			}
		} catch (const mongo_river::mongo::SourceError &error) {
			if (required)
				throw mongo_river::Error(
					error.Sqlstate(),
					"map_collection: cannot read the operation time of the source of \"" + db + "." + collection +
						"\", which copy: false starts from: " + error.Message(),
					error.Detail(),
					"copy: false streams the changes made after map_collection, so the source must answer now: "
					"check that it is reachable, or map the collection with copy (the default), which needs no "
					"source at declaration time.");
			PG_RETURN_NULL(); // unreachable: say nothing about the collection
		}
		if (!exists)
			mongo_river::pg::Call([&] {
				ereport(NOTICE, (errmsg("map_collection: collection \"%s.%s\" does not exist in the source", db.c_str(),
										collection.c_str()),
								 errdetail("The mapping is declared: documents arrive once the collection is created."),
								 errhint("Check the spelling of the collection (and of its database) if it "
										 "should exist already.")));
			});
		return Int64GetDatum(int64(*cut));
	});
}
