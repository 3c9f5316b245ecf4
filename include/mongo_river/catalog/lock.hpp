// lock.hpp: the per-river advisory lock that serialises the worker's batches with repairs made by
// verify and retry_rejects, so that a repair never writes a stale document over a newer change.
#pragma once

#include <string>

namespace mongo_river::catalog {

// LockRiver takes the river's transaction-level advisory lock (released at commit or abort).
void LockRiver(const std::string &river);

} // namespace mongo_river::catalog
