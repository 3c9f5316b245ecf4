// reader_thread.hpp: what a thread other than the process's own needs to read a source (PG-free).
//
// A PostgreSQL process is single-threaded: no PostgreSQL function may run off its main thread, and
// a signal must reach only the main thread. A reader thread (ScanAhead, scan_ahead.hpp) touches only
// libmongoc, through a client of its own, and this module's state:
//  - its waits on the source give up when its own stop flag is set, or when the process's
//    interrupt check says so (stream_guard.hpp); how long its current read has had no byte goes to
//    a counter the main thread reads (the main thread alone calls the wait reporter);
//  - libmongoc's log lines it causes are queued (the installed handler may call elog): the main
//    thread hands them on with DrainReaderLogs;
//  - it is started with every signal blocked;
//  - it is registered while alive: StopReaderThreads (at process exit, before mongoc_cleanup) asks
//    each to stop and waits a bounded time; mongoc_cleanup must not run while one is still alive.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include <mongoc/mongoc.h>

namespace mongo_river::mongo {

// ReaderMark is a reader thread's link to the process: its stop flag, the silence of its current
// read (ms without a byte, 0 when bytes arrive), and whether it has ended (set last, by the thread).
struct ReaderMark {
	std::atomic<bool> stop{false};
	std::atomic<int64_t> silent_ms{0};
	std::atomic<bool> ended{false};
};

// StartReaderThread runs body on a new thread with every signal blocked, marked as a reader thread
// with mark (OnReaderThread, ReaderStopRequested, ReportReaderSilence), registered until body
// returns. An exception escaping body ends the thread, never the process.
std::thread StartReaderThread(std::shared_ptr<ReaderMark> mark, std::function<void()> body);

// OnReaderThread tells whether the calling thread is a reader thread.
bool OnReaderThread();

// ReaderStopRequested tells whether the calling reader thread was asked to stop (false on the main
// thread).
bool ReaderStopRequested();

// ReportReaderSilence records, on a reader thread, how long its current read has had no byte.
void ReportReaderSilence(int64_t silent_ms);

// QueueReaderLog keeps a libmongoc log line written on a reader thread (at most 1000 are kept;
// later ones are counted).
void QueueReaderLog(mongoc_log_level_t level, const char *domain, const char *message);

// DrainReaderLogs (main thread) writes the queued lines through libmongoc's log (the installed
// handler), with a line counting any dropped.
void DrainReaderLogs();

// WaitReaderEnded waits up to wait_ms for the thread of mark to end (its mark's ended set);
// returns whether it ended.
bool WaitReaderEnded(const ReaderMark &mark, int64_t wait_ms);

// StopReaderThreads (main thread) asks every live reader thread to stop and waits up to wait_ms for
// them to end; returns how many are still alive.
int StopReaderThreads(int64_t wait_ms);

} // namespace mongo_river::mongo
