// lock.cpp: the per-river advisory lock.
#include "mongo_river/catalog/lock.hpp"

#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
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

// kSyncOnceClass is the first key of the session lock a sync_once run holds on its river ("mrso").
constexpr int32 kSyncOnceClass = 0x6d72736f;

namespace {

LOCKTAG SyncOnceTag(const std::string &river) {
	// As pg_advisory_lock(int4, int4) keys it (the second key: the name's hash, as hashtext's).
	const uint32 hash = hash_bytes(reinterpret_cast<const unsigned char *>(river.data()), int(river.size()));
	LOCKTAG tag;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, uint32(kSyncOnceClass), hash, 2);
	return tag;
}

} // namespace

SyncOnceLock::SyncOnceLock(const std::string &river) : river_(river) {
	const LOCKTAG tag = SyncOnceTag(river);
	held_ = pg::Call([&] { return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL; });
}

SyncOnceLock::~SyncOnceLock() {
	if (!held_)
		return;
	const LOCKTAG tag = SyncOnceTag(river_);
	try {
		pg::Call([&] { (void)LockRelease(&tag, ExclusiveLock, true); });
	} catch (...) {
		// A session lock left behind goes with the session.
	}
}

} // namespace mongo_river::catalog
