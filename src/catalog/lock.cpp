// lock.cpp: the per-river advisory lock.
#include "mongo_river/catalog/lock.hpp"

#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

namespace mongo_river::catalog {

// kLockClass is the first key of mongo_river's advisory locks ("mriv"), so that they do not
// collide with an application's single-key locks.
constexpr int32 kLockClass = 0x6d726976;

void LockRiver(const std::string &river) {
	pg::SpiConnection spi;
	pg::SpiExecute("SELECT pg_advisory_xact_lock($1, hashtext($2))",
				   {{INT4OID, Int32GetDatum(kLockClass)}, {TEXTOID, pg::TextDatum(river)}});
}

} // namespace mongo_river::catalog
