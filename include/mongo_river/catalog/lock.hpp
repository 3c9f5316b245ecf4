// lock.hpp: the per-river advisory lock that serialises the worker's batches with repairs made by
// verify and retry_rejects, so that a repair never writes a stale document over a newer change.
#pragma once

#include <string>

namespace mongo_river::catalog {

// LockRiver takes the river's transaction-level advisory lock (released at commit or abort).
void LockRiver(const std::string &river);

// SyncOnceLock tries the river's sync_once session lock (held across the run's commits, released
// when the object goes, an error included): Held() tells whether it was free. Two sync_once runs of
// one river at once would each read from the position they loaded and apply what the other
// applied.
class SyncOnceLock {
public:
	explicit SyncOnceLock(const std::string &river);
	~SyncOnceLock();
	SyncOnceLock(const SyncOnceLock &) = delete;
	SyncOnceLock &operator=(const SyncOnceLock &) = delete;
	bool Held() const { return held_; }

private:
	std::string river_;
	bool held_ = false;
};

} // namespace mongo_river::catalog
