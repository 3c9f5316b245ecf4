// stream_guard.hpp: connections to MongoDB whose waits give up when the process is asked to stop
// (PG-free).
//
// libmongoc blocks in a read for as long as socketTimeoutMS allows, and a signal does not end that
// wait. A source that goes silent would then hold a worker past SIGTERM, or a backend past its
// query cancel, for the whole socket timeout, and a shorter socketTimeoutMS would cut legitimate
// slow commands (a large $sample, a long first batch). GuardClient installs a stream initiator on a
// client: its connections are libmongoc's usual ones (TCP, TLS; reads bypass the buffered stream,
// see ReadDirectly), except that every wait
// for the source (a read, the handshake's poll) is cut into slices of kGuardSliceMs, between which
// the installed InterruptCheck is asked whether to give up; a read that gives up fails like a
// broken connection (the driver closes it), and a new connection is refused while the check holds.
// A WaitReporter, if installed, is told after every slice how long the current read has had no byte
// from the source. Neither hook may throw or longjmp: they run inside libmongoc's frames.
#pragma once

#include <cstdint>
#include <string>

#include <mongoc/mongoc.h>

namespace mongo_river::mongo {

// kGuardSliceMs is the longest a read on a guarded connection waits before asking InterruptCheck.
inline constexpr int32_t kGuardSliceMs = 100;

// InterruptCheck tells whether the process wants every wait on a source to give up now.
using InterruptCheck = bool (*)();
// WaitReporter is told how long (ms) the current read has waited for the source's next byte.
using WaitReporter = void (*)(int64_t silent_ms, void *data);

// SetInterruptCheck installs the process's interrupt check (nullptr: reads are never cut short).
void SetInterruptCheck(InterruptCheck check);
// SetWaitReporter installs (or, with nullptr, removes) the process's wait reporter.
void SetWaitReporter(WaitReporter reporter, void *data);

// ReportWait tells the installed wait reporter (if any) that a wait for the source has had no byte
// for silent_ms: for a main thread waiting on a reader thread's read (reader_thread.hpp).
void ReportWait(int64_t silent_ms);

// InterruptRequested tells whether the installed InterruptCheck asks to give up now (on a reader
// thread, also whether it was asked to stop); a failure of
// a source call made while it does is the interrupt's doing (SourceErrorKind::kInterrupted).
bool InterruptRequested();

// GuardStream makes one stream (libmongoc's buffered(socket) or buffered(tls(socket)), as the
// default stream initiator opens it) give up its waits like GuardClient's connections.
void GuardStream(mongoc_stream_t *stream);

// ReadDirectly makes a buffered stream (the default initiator's top) read straight from the stream
// under it into its caller's buffers, before any byte was read through it: the buffered stream's
// own buffer grows to the largest reply ever read (16 MiB and more with large documents) and never
// shrinks, and libmongoc reads every reply into a buffer of its own anyway. It also checks every
// reply read through it (ReplyReader, reply_check.hpp; the stream's writes tell the reader which
// requests await a reply) before libmongoc parses it: the read that
// ends a malformed reply fails (errno EPROTO) like a broken connection, as does every later read on
// that stream, and a warning names the fault. Returns whether the stream reads directly; false for
// a stream that is not libmongoc's buffered stream (left alone).
// owner names whose connection it is (GuardClient's connections: their client).
bool ReadDirectly(mongoc_stream_t *top, const void *owner = nullptr);

// ReplyFailure returns why the last reply read on owner's connections (see ReadDirectly) was
// refused; empty when none was, or one of them has read a good reply since.
std::string ReplyFailure(const void *owner = nullptr);

// GuardClient makes client's connections (including the ones it opens later) give up their waits
// when InterruptRequested() says so.
void GuardClient(mongoc_client_t *client);

} // namespace mongo_river::mongo
