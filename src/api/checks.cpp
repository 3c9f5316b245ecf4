// checks.cpp: SQL-level checks for the C functions.
#include "mongo_river/api/checks.hpp"

#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

namespace mongo_river::api {

void RequireRiverOwner(const char *fn, const std::string &river) {
	pg::SpiConnection spi;
	// As the catalog's owner (only mongo_river's code may call _owned_river); it checks the role the
	// running call acts for (catalog::CallerOid).
	catalog::AsCatalogOwner as_catalog_owner;
	pg::SpiExecute("SELECT mongo_river_internal._owned_river($1, $2)",
				   {{TEXTOID, pg::TextDatum(fn)}, {NAMEOID, pg::NameDatum(river)}});
}

} // namespace mongo_river::api
