// scan_ahead.hpp: a collection scan that reads its next batch while the caller writes the one it
// has (PG-free).
//
// A copy alternates between waiting for the source (the server building a reply, the reply on the
// wire) and writing the batch into PostgreSQL; on its own it does one at a time. Given a Source of
// its own, ScanAhead reads on a reader thread (reader_thread.hpp): when NextBatch hands a batch
// over, the thread goes on reading the next one, so the two overlap. The thread touches only its
// own client, its CollectionScan and this object's queue (one batch); it reads ahead only while
// documents are small (the last document of a batch read in place, a large one, must stay valid until
// the caller is done with it, and two batches of large documents at once would double the copy's
// memory). Without a Source of its own it reads on the caller's thread, as CollectionScan does; so
// does a scan whose thread could not be started, or whose thread's connection failed (a source that
// refuses or drops a second connection): the rest of the copy reads on the caller's connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mongo_river/mongo/copy.hpp"

namespace mongo_river::mongo {

class ScanAhead {
public:
	// ScanAhead prepares to read db.coll in _id order after resume_after, like CollectionScan: on a
	// reader thread through own (a Source nothing else uses; it is the thread's until the scan is
	// destroyed), or through source on the caller's thread when own is null.
	ScanAhead(Source &source, std::unique_ptr<Source> own, std::string db, std::string coll, const bson_t *resume_after,
			  int32_t batch_size);
	ScanAhead(const ScanAhead &) = delete;
	ScanAhead &operator=(const ScanAhead &) = delete;
	// The destructor stops the reader thread (its read gives up within a guard slice) and waits for
	// it up to kStopWaitMs; one that does not end by then is left to end on its own.
	~ScanAhead();

	// NextBatch returns the next up to max_docs documents (CollectionScan::NextBatch): the batch read
	// ahead if there is one, else one read now; then, on a reader thread, starts reading the next.
	// While it waits, libmongoc's log lines of the thread are written and the wait is reported
	// (stream_guard.hpp's wait reporter); it gives up (SourceError kInterrupted) when the process is
	// asked to stop and the thread has not answered within kStopWaitMs. A failure of the read is
	// thrown here, as CollectionScan throws it.
	std::vector<Bson> NextBatch(size_t max_docs);
	// Done tells whether the last batch NextBatch returned ended the collection.
	bool Done() const { return done_; }
	// LastId is {_id: value} of the last document NextBatch returned (or resume_after).
	const bson_t *LastId() const { return last_id_.get(); }
	// Restart drops what was read after the last batch returned (a batch read ahead, the rest of a
	// reply): the next NextBatch reads afresh after LastId().
	void Restart();
	// Threaded tells whether the scan reads on a reader thread.
	bool Threaded() const { return bool(shared_); }

	// kStopWaitMs: how long the destructor, or a wait the process's stop interrupts, waits for the
	// reader thread.
	static constexpr int64_t kStopWaitMs = 500;
	// kAheadMaxDocBytes: the next batch is read ahead only after batches whose documents average
	// less than this (BSON bytes).
	static constexpr size_t kAheadMaxDocBytes = 64 * 1024;

	struct Shared; // the reader thread's state (scan_ahead.cpp)
	struct Result; // a batch the reader thread read, or its failure

private:
	// StopThread stops the reader thread (see the destructor) and forgets it.
	void StopThread();
	// Ask has the reader thread read the next batch of max_docs.
	void Ask(size_t max_docs);
	// Take waits for the batch asked for and returns it.
	Result Take();

	Source &source_;
	std::string db_;
	std::string coll_;
	int32_t batch_size_;
	std::unique_ptr<CollectionScan> inline_; // without a reader thread
	std::shared_ptr<Shared> shared_;         // with one
	std::thread thread_;
	bool asked_ = false; // the thread reads (or has read) a batch not taken yet
	Bson last_id_;
	bool done_ = false;
};

} // namespace mongo_river::mongo
