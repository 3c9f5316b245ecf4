// reader_thread.cpp: reader threads' marks, log queue and registry (PG-free; see reader_thread.hpp).
#include "mongo_river/mongo/reader_thread.hpp"

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace mongo_river::mongo {

namespace {

// The state below is allocated once and never freed: a reader thread still alive at process exit
// (one that did not stop in time) must never meet a destroyed mutex or container.
struct LoggedLine {
	mongoc_log_level_t level;
	std::string domain;
	std::string message;
};

struct Shared {
	std::mutex mutex;
	std::condition_variable ended; // a reader thread unregistered
	std::vector<ReaderMark *> alive;
	std::deque<LoggedLine> logs;
	size_t dropped_logs = 0;
};

Shared &State() {
	static Shared *shared = new Shared;
	return *shared;
}

constexpr size_t kMaxQueuedLogs = 1000;

// Unregister removes mark from the live reader threads (under State().mutex).
void Unregister(const ReaderMark *mark) {
	auto &alive = State().alive;
	for (auto it = alive.begin(); it != alive.end(); ++it) {
		if (*it == mark) {
			alive.erase(it);
			return;
		}
	}
}

// The calling thread's mark (nullptr on the main thread). A plain pointer: no destructor runs at a
// thread's or the process's exit.
thread_local ReaderMark *this_reader = nullptr;

} // namespace

std::thread StartReaderThread(std::shared_ptr<ReaderMark> mark, std::function<void()> body) {
	{
		std::lock_guard<std::mutex> lock(State().mutex);
		State().alive.push_back(mark.get());
	}
	// The new thread inherits the signal mask in force when it is created: block everything for it,
	// so every signal keeps going to the main thread, then restore the main thread's mask.
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	std::thread thread;
	try {
		thread = std::thread([mark, body = std::move(body)]() mutable {
			this_reader = mark.get();
			try {
				body();
			} catch (...) {
				// body reports its failures itself; nothing may end the process.
			}
			try {
				body = nullptr; // what it holds (a client) goes before the thread counts as ended
			} catch (...) {
			}
			this_reader = nullptr;
			std::lock_guard<std::mutex> lock(State().mutex);
			Unregister(mark.get());
			mark->ended.store(true);
			State().ended.notify_all();
		});
	} catch (...) {
		pthread_sigmask(SIG_SETMASK, &old, nullptr);
		std::lock_guard<std::mutex> lock(State().mutex);
		Unregister(mark.get());
		throw;
	}
	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	return thread;
}

bool OnReaderThread() {
	return this_reader != nullptr;
}

bool ReaderStopRequested() {
	return this_reader && this_reader->stop.load(std::memory_order_relaxed);
}

void ReportReaderSilence(int64_t silent_ms) {
	if (this_reader)
		this_reader->silent_ms.store(silent_ms, std::memory_order_relaxed);
}

void QueueReaderLog(mongoc_log_level_t level, const char *domain, const char *message) {
	std::lock_guard<std::mutex> lock(State().mutex);
	if (State().logs.size() >= kMaxQueuedLogs) {
		++State().dropped_logs;
		return;
	}
	State().logs.push_back(LoggedLine{level, domain ? domain : "", message ? message : ""});
}

void DrainReaderLogs() {
	std::deque<LoggedLine> lines;
	size_t dropped = 0;
	{
		std::lock_guard<std::mutex> lock(State().mutex);
		lines.swap(State().logs);
		std::swap(dropped, State().dropped_logs);
	}
	for (const LoggedLine &line : lines)
		mongoc_log(line.level, line.domain.c_str(), "%s", line.message.c_str());
	if (dropped > 0)
		mongoc_log(MONGOC_LOG_LEVEL_WARNING, "reader", "%zu more log lines of a reader thread were dropped", dropped);
}

bool WaitReaderEnded(const ReaderMark &mark, int64_t wait_ms) {
	std::unique_lock<std::mutex> lock(State().mutex);
	return State().ended.wait_for(lock, std::chrono::milliseconds(wait_ms), [&mark] { return mark.ended.load(); });
}

int StopReaderThreads(int64_t wait_ms) {
	std::unique_lock<std::mutex> lock(State().mutex);
	for (ReaderMark *mark : State().alive)
		mark->stop.store(true);
	State().ended.wait_for(lock, std::chrono::milliseconds(wait_ms), [] { return State().alive.empty(); });
	return int(State().alive.size());
}

} // namespace mongo_river::mongo
