// scan_ahead.cpp: a collection scan read one batch ahead on a reader thread (see scan_ahead.hpp).
#include "mongo_river/mongo/scan_ahead.hpp"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>

#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/reader_thread.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/mongo/stream_guard.hpp"

namespace mongo_river::mongo {

struct ScanAhead::Result {
	std::vector<Bson> docs;
	bool done = false;
	Bson last_id;
	bool borrowed = false; // the last document is read in place (CollectionScan::LastBorrowed)
	size_t bytes = 0;      // the documents' BSON
	std::exception_ptr error;
};

// Shared is what the caller and the reader thread share. The thread uses source and scan only
// between taking a request (asked) and posting its result (ready), the caller only while neither is
// pending; both hand over under mutex.
struct ScanAhead::Shared {
	std::unique_ptr<Source> source;
	std::unique_ptr<CollectionScan> scan;
	std::shared_ptr<ReaderMark> mark = std::make_shared<ReaderMark>();
	std::mutex mutex;
	std::condition_variable changed;
	bool asked = false; // a request the thread has not taken yet
	size_t want = 0;
	bool ready = false; // result holds the answer to the last request
	Result result;
};

namespace {

int64_t NowMs() {
	return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

// ReadLoop is the reader thread: it answers each request with a batch (or its failure) until it is
// asked to stop.
void ReadLoop(ScanAhead::Shared &shared) {
	std::unique_lock<std::mutex> lock(shared.mutex);
	while (!shared.mark->stop.load()) {
		// (a bounded wait: StopReaderThreads sets the stop flag without notifying)
		if (!shared.changed.wait_for(lock, std::chrono::milliseconds(kGuardSliceMs),
									 [&] { return shared.asked || shared.mark->stop.load(); }) ||
			!shared.asked)
			continue;
		shared.asked = false;
		const size_t want = shared.want;
		lock.unlock();
		ScanAhead::Result result;
		try {
			result.docs = shared.scan->NextBatch(want);
			result.done = shared.scan->Done();
			result.last_id = CopyBson(shared.scan->LastId());
			result.borrowed = shared.scan->LastBorrowed();
			for (const Bson &doc : result.docs)
				result.bytes += doc->len;
		} catch (...) {
			result.docs.clear();
			result.error = std::current_exception();
		}
		lock.lock();
		shared.result = std::move(result);
		shared.ready = true;
		shared.changed.notify_all();
	}
}

} // namespace

ScanAhead::ScanAhead(Source &source, std::unique_ptr<Source> own, std::string db, std::string coll,
					 const bson_t *resume_after, int32_t batch_size)
	: source_(source), db_(std::move(db)), coll_(std::move(coll)), batch_size_(batch_size),
	  last_id_(CopyBson(resume_after)) {
	if (own) {
		auto shared = std::make_shared<Shared>();
		shared->source = std::move(own);
		shared->scan = std::make_unique<CollectionScan>(*shared->source, db_, coll_, resume_after, batch_size);
		try {
			thread_ = StartReaderThread(shared->mark, [shared] { ReadLoop(*shared); });
			shared_ = std::move(shared);
			return;
		} catch (const std::system_error &) {
			// No thread to be had (a process limit): read on the caller's thread.
		}
	}
	inline_ = std::make_unique<CollectionScan>(source, db_, coll_, resume_after, batch_size);
}

ScanAhead::~ScanAhead() {
	StopThread();
}

void ScanAhead::StopThread() {
	if (!shared_)
		return;
	{
		std::lock_guard<std::mutex> lock(shared_->mutex);
		shared_->mark->stop.store(true);
		shared_->changed.notify_all();
	}
	// A read in progress gives up within a guard slice (its stop flag is its interrupt check).
	if (WaitReaderEnded(*shared_->mark, kStopWaitMs))
		thread_.join();
	else
		thread_.detach(); // it ends on its own (what it uses is its own); mongoc_cleanup waits for it
	shared_.reset();
	asked_ = false;
	try {
		DrainReaderLogs();
	} catch (...) {
	}
}

void ScanAhead::Ask(size_t max_docs) {
	std::lock_guard<std::mutex> lock(shared_->mutex);
	shared_->want = max_docs;
	shared_->asked = true;
	shared_->ready = false;
	asked_ = true;
	shared_->changed.notify_all();
}

ScanAhead::Result ScanAhead::Take() {
	std::unique_lock<std::mutex> lock(shared_->mutex);
	int64_t interrupted_at = -1;
	while (!shared_->ready) {
		if (shared_->changed.wait_for(lock, std::chrono::milliseconds(kGuardSliceMs), [&] { return shared_->ready; }))
			break;
		lock.unlock();
		DrainReaderLogs();
		ReportWait(shared_->mark->silent_ms.load());
		// The thread sees the process's interrupt too, and its read gives up within a slice; one that
		// does not answer in time (a connection being opened) is left behind.
		if (InterruptRequested()) {
			if (interrupted_at < 0)
				interrupted_at = NowMs();
			else if (NowMs() - interrupted_at > kStopWaitMs)
				throw SourceError(SourceErrorKind::kInterrupted, 0, sourcestate::kQueryCanceled,
								  "cannot copy the collection: interrupted while waiting for the MongoDB server");
		}
		lock.lock();
	}
	Result result = std::move(shared_->result);
	shared_->ready = false;
	asked_ = false;
	lock.unlock();
	DrainReaderLogs();
	return result;
}

std::vector<Bson> ScanAhead::NextBatch(size_t max_docs) {
	if (!shared_) {
		std::vector<Bson> docs = inline_->NextBatch(max_docs);
		done_ = inline_->Done();
		last_id_ = CopyBson(inline_->LastId());
		return docs;
	}
	if (!asked_)
		Ask(max_docs);
	Result result = Take();
	if (result.error) {
		// The thread's connection failed (a source that refuses or drops a second connection): the
		// rest of the copy reads on the caller's connection (a real outage fails there too, and is
		// reported as usual; the next copy tries a thread again).
		try {
			std::rethrow_exception(result.error);
		} catch (const SourceError &error) {
			if (error.Kind() == SourceErrorKind::kInterrupted)
				throw;
			mongoc_log(MONGOC_LOG_LEVEL_WARNING, "copy",
					   "%s.%s: reading on the river's connection, without reading ahead: the reader thread's "
					   "connection failed: %s: %s",
					   db_.c_str(), coll_.c_str(), error.Message().c_str(), error.Detail().c_str());
		}
		StopThread();
		inline_ = std::make_unique<CollectionScan>(source_, db_, coll_, last_id_.get(), batch_size_);
		return NextBatch(max_docs);
	}
	done_ = result.done;
	last_id_ = std::move(result.last_id);
	// The next batch is read now, while the caller writes this one; not after the last batch, nor
	// after a document read in place (reading on would free it), nor after large documents (two
	// batches of them at once would double the copy's memory).
	if (!done_ && !result.borrowed && result.bytes < result.docs.size() * kAheadMaxDocBytes)
		Ask(max_docs);
	return std::move(result.docs);
}

void ScanAhead::Restart() {
	if (!shared_) {
		inline_->Restart();
		return;
	}
	if (asked_)
		Take(); // dropped, a failure with it: the scan reads afresh
	std::lock_guard<std::mutex> lock(shared_->mutex);
	shared_->scan->RestartAfter(last_id_.get());
}

} // namespace mongo_river::mongo
