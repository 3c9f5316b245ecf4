// checks.cpp: SQL-level checks for the C functions.
#include "mongo_river/api/checks.hpp"

#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

namespace mongo_river::api {

void RequireRiverOwner(const char *fn, const std::string &river) {
	pg::SpiConnection spi;
	pg::SpiExecute("SELECT mongo_river_internal._owned_river($1, $2)",
				   {{TEXTOID, pg::TextDatum(fn)}, {NAMEOID, pg::NameDatum(river)}});
}

} // namespace mongo_river::api
