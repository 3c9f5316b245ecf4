// mongoc_runtime.hpp: libmongoc's process-wide set-up inside a PostgreSQL backend or worker.
#pragma once

namespace mongo_river::pg {

// EnsureMongocInitialized calls mongoc_init() once in this process (never in the postmaster),
// routes libmongoc's log to the server log, makes every wait on a source give up when an interrupt
// is pending (mongo::SetInterruptCheck: a worker's SIGTERM, a query cancel, statement_timeout,
// pg_terminate_backend) and arranges mongoc_cleanup() at process exit.
void EnsureMongocInitialized();

} // namespace mongo_river::pg
