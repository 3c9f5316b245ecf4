// reader_thread_test.cpp: reader threads run with signals blocked, queue their log lines for the
// main thread, see their stop flag as an interrupt, and are waited for by StopReaderThreads.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "mongo_river/mongo/credentials.hpp"
#include "mongo_river/mongo/reader_thread.hpp"
#include "mongo_river/mongo/scan_ahead.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/mongo/stream_guard.hpp"

namespace mongo_river::mongo {
namespace {

struct Logged {
	std::string message;
	std::thread::id thread;
};
std::vector<Logged> logged;

void Collect(mongoc_log_level_t, const char *, const char *message, void *) {
	logged.push_back(Logged{message, std::this_thread::get_id()});
}

TEST(ReaderThread, RunsWithEverySignalBlockedAndKnowsItself) {
	auto mark = std::make_shared<ReaderMark>();
	std::atomic<bool> blocked{false}, inside{false};
	std::thread thread = StartReaderThread(mark, [&] {
		sigset_t mask;
		pthread_sigmask(SIG_SETMASK, nullptr, &mask);
		blocked = sigismember(&mask, SIGTERM) && sigismember(&mask, SIGINT) && sigismember(&mask, SIGUSR1) &&
				  sigismember(&mask, SIGALRM);
		inside = OnReaderThread();
	});
	thread.join();
	EXPECT_TRUE(blocked.load());
	EXPECT_TRUE(inside.load());
	EXPECT_TRUE(mark->ended.load());
	EXPECT_FALSE(OnReaderThread());
	// The caller's own mask is what it was.
	sigset_t mask;
	pthread_sigmask(SIG_SETMASK, nullptr, &mask);
	EXPECT_FALSE(sigismember(&mask, SIGTERM));
}

TEST(ReaderThread, LogLinesGoToTheMainThreadWhenDrained) {
	SetLogHandler(Collect, nullptr);
	logged.clear();
	auto mark = std::make_shared<ReaderMark>();
	std::thread thread =
		StartReaderThread(mark, [] { mongoc_log(MONGOC_LOG_LEVEL_WARNING, "test", "from the reader"); });
	thread.join();
	EXPECT_TRUE(logged.empty()); // queued, not written on the reader thread
	DrainReaderLogs();
	ASSERT_EQ(logged.size(), 1u);
	EXPECT_EQ(logged[0].message, "from the reader");
	EXPECT_EQ(logged[0].thread, std::this_thread::get_id());
	mongoc_log(MONGOC_LOG_LEVEL_WARNING, "test", "from the main thread");
	ASSERT_EQ(logged.size(), 2u); // the main thread's own lines go straight through
	SetLogHandler(mongoc_log_default_handler, nullptr);
}

TEST(ReaderThread, StopIsAnInterruptAndIsWaitedFor) {
	auto mark = std::make_shared<ReaderMark>();
	std::atomic<bool> saw_interrupt{false};
	std::thread thread = StartReaderThread(mark, [&] {
		while (!InterruptRequested())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		saw_interrupt = true;
	});
	EXPECT_FALSE(InterruptRequested()); // the main thread's check is the process's
	EXPECT_EQ(StopReaderThreads(5000), 0);
	EXPECT_TRUE(saw_interrupt.load());
	EXPECT_TRUE(mark->ended.load());
	thread.join();
}

TEST(ReaderThread, AThreadThatDoesNotStopIsCounted) {
	auto mark = std::make_shared<ReaderMark>();
	std::atomic<bool> release{false};
	std::thread thread = StartReaderThread(mark, [&] {
		while (!release.load())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	});
	EXPECT_EQ(StopReaderThreads(50), 1);
	release = true;
	thread.join();
	EXPECT_EQ(StopReaderThreads(0), 0);
}

TEST(ReaderThread, WaitReaderEndedWakesAtTheEndAndGivesUpAtTheDeadline) {
	auto mark = std::make_shared<ReaderMark>();
	std::atomic<bool> release{false};
	std::thread thread = StartReaderThread(mark, [&] {
		while (!release.load())
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
	});
	auto start = std::chrono::steady_clock::now();
	EXPECT_FALSE(WaitReaderEnded(*mark, 30));
	auto took = std::chrono::steady_clock::now() - start;
	EXPECT_GE(took, std::chrono::milliseconds(30));
	std::thread releaser([&] {
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
		release = true;
	});
	start = std::chrono::steady_clock::now();
	EXPECT_TRUE(WaitReaderEnded(*mark, 5000));
	took = std::chrono::steady_clock::now() - start;
	EXPECT_LT(took, std::chrono::milliseconds(1000)) << "the wait did not wake at the thread's end";
	releaser.join();
	thread.join();
	EXPECT_TRUE(WaitReaderEnded(*mark, 0));
}

TEST(ReaderThread, AnExceptionEndsTheThreadOnly) {
	auto mark = std::make_shared<ReaderMark>();
	std::thread thread = StartReaderThread(mark, [] { throw std::runtime_error("boom"); });
	thread.join();
	EXPECT_TRUE(mark->ended.load());
}

TEST(ScanAhead, AnIdleReaderThreadStopsAtOnce) {
	// The thread waits for a request; destroying the scan must not wait out its wait's slice (it
	// did: 100 ms each time, which delayed the copy's end and the worker's exit).
	mongoc_init();
	Source main("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100");
	for (int i = 0; i < 5; i++) {
		auto scan = std::make_unique<ScanAhead>(main, std::make_unique<Source>("mongodb://127.0.0.1:1/"), "db", "c",
												nullptr, 10);
		ASSERT_TRUE(scan->Threaded());
		std::this_thread::sleep_for(std::chrono::milliseconds(5)); // the thread waits now
		const auto start = std::chrono::steady_clock::now();
		scan.reset();
		const auto took =
			std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
		EXPECT_LT(took, 50) << "destroying a scan whose reader thread was idle took " << took << " ms";
	}
	EXPECT_EQ(StopReaderThreads(0), 0);
}

} // namespace
} // namespace mongo_river::mongo
