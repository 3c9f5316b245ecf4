// signals.hpp: backends finding, stopping and waking the launcher and river workers directly.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace mongo_river::worker {

// FindRiverWorkers returns the pids of the running river workers of the current database that run
// river (every river when river is empty).
std::vector<pid_t> FindRiverWorkers(const std::string &river);

// StopProcesses sends SIGTERM to each pid and waits until all have exited. Past 3 s it also
// cancels what they wait for (SIGINT: a lock held by the caller's transaction, for example). After
// timeout_ms it throws a 55006 Error naming fn and what; returns at once for an empty list.
void StopProcesses(const std::vector<pid_t> &pids, const char *fn, const std::string &what, int timeout_ms);

// WakeAtTransactionEnd makes the end of the current transaction (commit or rollback) set the
// launcher's latch, so it acts on the rivers' new state at once instead of within naptime, and
// sends SIGHUP to river's worker (if it runs), so it reloads the river's declaration at once.
void WakeAtTransactionEnd(const std::string &river);

} // namespace mongo_river::worker
