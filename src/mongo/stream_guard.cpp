// stream_guard.cpp: connections to MongoDB whose waits give up when the process is asked to stop.
//
// libmongoc's default stream initiator builds buffered(socket) or buffered(tls(socket)) streams. The
// guard keeps those streams and replaces two entries of their function tables: readv of the stream
// under the buffered one (the buffered stream itself ignores min_bytes and would lose a partly read
// reply if cut short), and poll of the root socket stream (the single-threaded topology scanner
// waits for the handshake's reply with mongoc_stream_poll, which goes to the root stream). The
// replaced functions call the originals in slices. mongoc_stream_t is libmongoc's public stream
// interface; all streams of one type share one function table, so the originals are kept per type.
#include "mongo_river/mongo/stream_guard.hpp"

#include "mongo_river/mongo/reader_thread.hpp"
#include "mongo_river/mongo/reply_check.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

// mongoc_client_default_stream_initiator is libmongoc's own initiator (what a client uses unless
// told otherwise; user_data is the client). libmongoc 1.23 exports it but declares it only in a
// private header; its type is the public mongoc_stream_initiator_t.
extern "C" mongoc_stream_t *mongoc_client_default_stream_initiator(const mongoc_uri_t *uri,
																   const mongoc_host_list_t *host, void *user_data,
																   bson_error_t *error);

namespace mongo_river::mongo {

namespace {

using ReadvFn = ssize_t (*)(mongoc_stream_t *, mongoc_iovec_t *, size_t, size_t, int32_t);
using PollFn = ssize_t (*)(mongoc_stream_poll_t *, size_t, int32_t);

InterruptCheck interrupt_check = nullptr;
WaitReporter wait_reporter = nullptr;
void *wait_reporter_data = nullptr;

// Originals holds a stream type's own readv and poll (libmongoc's stream types are small numbers).
struct Originals {
	ReadvFn readv = nullptr;
	PollFn poll = nullptr;
};
constexpr int kMaxStreamType = 16;
// kSliceSlackMs: a slice whose wait ended this much before its end did not time out (libmongoc
// rounds the remaining wait down to whole milliseconds).
constexpr int64_t kSliceSlackMs = 10;
Originals originals[kMaxStreamType];

// Reader threads (reader_thread.hpp) open and read connections of their own: the tables below are
// shared, so they are read and written under this mutex (allocated once, never freed: a reader
// thread may outlive the process's static destructors). originals and the buffered stream's
// functions are written once, under it, before any stream of their type reads through them.
std::mutex &TableMutex() {
	static std::mutex *mutex = new std::mutex;
	return *mutex;
}

int64_t NowMs() {
	return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

// SliceTimedOut tells whether a failed original read only ran out of its slice.
bool SliceTimedOut(mongoc_stream_t *stream) {
	return mongoc_stream_timed_out(stream) || errno == ETIMEDOUT || errno == EAGAIN || errno == EWOULDBLOCK;
}

// GuardedReadv reads like the stream's own readv (at least min_bytes within timeout_msec), in
// slices: it asks the original for at least one byte per slice, so no byte is lost between slices,
// and gives up (-1, errno EINTR) as soon as InterruptRequested() says so.
ssize_t GuardedReadv(mongoc_stream_t *stream, mongoc_iovec_t *iov, size_t iovcnt, size_t min_bytes,
					 int32_t timeout_msec) {
	ReadvFn original = originals[stream->type].readv;
	if (min_bytes == 0 || timeout_msec == 0 || (!interrupt_check && !OnReaderThread()))
		return original(stream, iov, iovcnt, min_bytes, timeout_msec);
	std::vector<mongoc_iovec_t> rest(iov, iov + iovcnt);
	std::vector<mongoc_iovec_t> scratch;
	size_t first = 0;
	size_t total = 0;
	const int64_t start = NowMs();
	const int64_t deadline = timeout_msec < 0 ? -1 : start + timeout_msec;
	int64_t last_byte = start;
	while (true) {
		if (InterruptRequested()) {
			errno = EINTR;
			return -1;
		}
		// The last slice waits at least 2 ms: libmongoc then reports its end as a timeout (ETIMEDOUT,
		// what mongoc_stream_timed_out looks for), where a wait of under 1 ms reads as EAGAIN.
		int32_t slice = kGuardSliceMs;
		if (deadline >= 0)
			slice = static_cast<int32_t>(std::clamp<int64_t>(deadline - NowMs(), 2, kGuardSliceMs));
		// The original may move the iovecs it is given: hand it a copy.
		scratch.assign(rest.begin() + static_cast<std::ptrdiff_t>(first), rest.end());
		const int64_t slice_start = NowMs();
		ssize_t n = original(stream, scratch.data(), scratch.size(), 1, slice);
		if (n > 0) {
			total += static_cast<size_t>(n);
			last_byte = NowMs();
			ReportReaderSilence(0);
			size_t left = static_cast<size_t>(n);
			while (left > 0 && first < rest.size()) {
				size_t take = std::min(left, rest[first].iov_len);
				rest[first].iov_base = static_cast<char *>(rest[first].iov_base) + take;
				rest[first].iov_len -= take;
				left -= take;
				if (rest[first].iov_len == 0)
					++first;
			}
			if (total >= min_bytes || first == rest.size())
				return static_cast<ssize_t>(total);
			continue;
		}
		// A slice that ended early did not time out: the connection was closed (the socket's errno
		// may then be a stale one from an earlier wait) or failed. Report it as the original does.
		if (!SliceTimedOut(stream) || NowMs() - slice_start + kSliceSlackMs < slice)
			return -1;
		if (deadline >= 0 && NowMs() >= deadline) {
			// The whole timeout passed: fail as the original does (the caller closes the connection).
			errno = ETIMEDOUT;
			return -1;
		}
		// (the wait reporter is the main thread's: a reader thread's silence goes to its mark)
		if (OnReaderThread())
			ReportReaderSilence(NowMs() - last_byte);
		else if (wait_reporter)
			wait_reporter(NowMs() - last_byte, wait_reporter_data);
	}
}

// GuardedPoll polls like the root stream's own poll, in slices; when InterruptRequested() says so it
// reports every stream as failed (POLLERR), which ends the scanner's wait for a handshake reply.
ssize_t GuardedPoll(mongoc_stream_poll_t *streams, size_t nstreams, int32_t timeout_msec) {
	PollFn original = originals[streams[0].stream->type].poll;
	if (timeout_msec == 0 || (!interrupt_check && !OnReaderThread()))
		return original(streams, nstreams, timeout_msec);
	const int64_t deadline = timeout_msec < 0 ? -1 : NowMs() + timeout_msec;
	while (true) {
		if (InterruptRequested()) {
			for (size_t i = 0; i < nstreams; ++i)
				streams[i].revents = POLLERR;
			return static_cast<ssize_t>(nstreams);
		}
		int32_t slice = kGuardSliceMs;
		if (deadline >= 0) {
			const int64_t left = deadline - NowMs();
			if (left <= 0)
				return 0;
			slice = static_cast<int32_t>(std::min<int64_t>(slice, left));
		}
		ssize_t n = original(streams, nstreams, slice);
		if (n != 0)
			return n;
	}
}

// Remember records type's original function (the first stream of a type seen) and tells whether
// function is it: a stream whose table differs from its type's is left alone.
template <typename Fn> bool Remember(Fn &slot, Fn function) {
	if (!slot)
		slot = function;
	return slot == function;
}

} // namespace

// GuardStream replaces readv of the stream under the top one (the default initiator's top is always
// a buffered stream) and poll of the root.
void GuardStream(mongoc_stream_t *top) {
	std::lock_guard<std::mutex> lock(TableMutex());
	// (mongoc_stream_get_base_stream returns the stream itself when it has no base.)
	mongoc_stream_t *reader = top->get_base_stream ? top->get_base_stream(top) : top;
	if (reader->type >= 0 && reader->type < kMaxStreamType && reader->readv && reader->readv != GuardedReadv &&
		Remember(originals[reader->type].readv, reader->readv))
		reader->readv = GuardedReadv;
	mongoc_stream_t *root = reader;
	while (root->get_base_stream && root->get_base_stream(root))
		root = root->get_base_stream(root);
	if (root && root->type >= 0 && root->type < kMaxStreamType && root->poll && root->poll != GuardedPoll &&
		Remember(originals[root->type].poll, root->poll))
		root->poll = GuardedPoll;
}

namespace {

// BufferedReadv returns libmongoc's readv of its buffered streams, read off a probe stream once
// (the stream types are private to libmongoc; the function table is what identifies them).
ReadvFn BufferedReadv() {
	static const ReadvFn readv = [] {
		static mongoc_stream_t dummy{};
		dummy.destroy = [](mongoc_stream_t *) {};
		mongoc_stream_t *probe = mongoc_stream_buffered_new(&dummy, 1);
		ReadvFn fn = probe->readv;
		mongoc_stream_destroy(probe); // destroys dummy too: a no-op
		return fn;
	}();
	return readv;
}

// Checked is a directly read stream's state: its reply reader, and the buffered stream's own destroy
// and failed (all buffered streams share them), called once the state is gone.
struct Checked {
	ReplyReader reader;
	const void *owner = nullptr; // the client whose connection it is (ReadDirectly's owner)
};
// checked: the state of each directly read stream. Only the thread using a stream touches its
// entry; the map's own lookups and changes are made under TableMutex (an entry stays where it is
// while other entries come and go).
std::unordered_map<mongoc_stream_t *, Checked> &checked = *new std::unordered_map<mongoc_stream_t *, Checked>;
ssize_t (*buffered_writev)(mongoc_stream_t *, mongoc_iovec_t *, size_t, int32_t) = nullptr;
void (*buffered_destroy)(mongoc_stream_t *) = nullptr;
void (*buffered_failed)(mongoc_stream_t *) = nullptr;
// pending_failure: per owner (client), why the last reply read was refused, until one of its
// connections reads a good reply (ReplyFailure). Per owner, because another client's good reply (a
// backend may hold two) says nothing about this client's error. It outlives the first error it
// explains: libmongoc's next one may be "No servers yet eligible for rescan" for the same cause.
std::unordered_map<const void *, std::string> &pending_failure = *new std::unordered_map<const void *, std::string>;

// Find returns stream's state, nullptr if it is not directly read.
Checked *Find(mongoc_stream_t *stream) {
	std::lock_guard<std::mutex> lock(TableMutex());
	auto found = checked.find(stream);
	return found == checked.end() ? nullptr : &found->second;
}

// DirectReadv reads from the stream under a buffered stream, into the caller's buffers, and hands
// what it read to the stream's reply reader: a read that ends a malformed reply fails (EPROTO), as
// does every read after it, so libmongoc never parses the reply and closes the connection.
ssize_t DirectReadv(mongoc_stream_t *stream, mongoc_iovec_t *iov, size_t iovcnt, size_t min_bytes,
					int32_t timeout_msec) {
	Checked *state = Find(stream);
	if (state && !state->reader.why().empty()) {
		errno = EPROTO;
		return -1;
	}
	// The read may move the iovecs it fills: keep where the bytes go.
	std::vector<mongoc_iovec_t> target(iov, iov + iovcnt);
	mongoc_stream_t *base = stream->get_base_stream(stream);
	ssize_t n = base->readv(base, iov, iovcnt, min_bytes, timeout_msec);
	if (n <= 0 || !state)
		return n;
	ReplyReader &reader = state->reader;
	size_t left = static_cast<size_t>(n);
	for (size_t i = 0; i < target.size() && left > 0; ++i) {
		size_t take = std::min(left, target[i].iov_len);
		if (!reader.Read(static_cast<const uint8_t *>(target[i].iov_base), take)) {
			{
				std::lock_guard<std::mutex> lock(TableMutex());
				pending_failure[state->owner] = reader.why();
			}
			mongoc_log(MONGOC_LOG_LEVEL_WARNING, "reply", "connection closed: the server sent a %s",
					   reader.why().c_str());
			errno = EPROTO;
			return -1;
		}
		left -= take;
	}
	if (reader.between_messages()) {
		std::lock_guard<std::mutex> lock(TableMutex());
		pending_failure.erase(state->owner);
	}
	return n;
}

// CheckedWritev writes as the buffered stream does and hands what was written to the stream's reply
// reader, which then knows the requests each reply must answer.
ssize_t CheckedWritev(mongoc_stream_t *stream, mongoc_iovec_t *iov, size_t iovcnt, int32_t timeout_msec) {
	// The write may move the iovecs it sends: keep where the bytes are.
	std::vector<mongoc_iovec_t> source(iov, iov + iovcnt);
	ssize_t n = buffered_writev(stream, iov, iovcnt, timeout_msec);
	Checked *state = Find(stream);
	if (n <= 0 || !state)
		return n;
	size_t left = static_cast<size_t>(n);
	for (size_t i = 0; i < source.size() && left > 0; ++i) {
		size_t take = std::min(left, source[i].iov_len);
		state->reader.Sent(static_cast<const uint8_t *>(source[i].iov_base), take);
		left -= take;
	}
	return n;
}

void CheckedDestroy(mongoc_stream_t *stream) {
	{
		std::lock_guard<std::mutex> lock(TableMutex());
		checked.erase(stream);
	}
	buffered_destroy(stream);
}

void CheckedFailed(mongoc_stream_t *stream) {
	{
		std::lock_guard<std::mutex> lock(TableMutex());
		checked.erase(stream);
	}
	buffered_failed(stream);
}

} // namespace

bool ReadDirectly(mongoc_stream_t *top, const void *owner) {
	std::lock_guard<std::mutex> lock(TableMutex());
	mongoc_stream_t *base = top->get_base_stream ? top->get_base_stream(top) : nullptr;
	if (!base || base == top || !base->readv || top->readv != BufferedReadv())
		return top->readv == DirectReadv;
	if (!top->destroy || !Remember(buffered_destroy, top->destroy) || !top->writev ||
		!Remember(buffered_writev, top->writev) || (top->failed && !Remember(buffered_failed, top->failed)))
		return false;
	top->readv = DirectReadv;
	top->writev = CheckedWritev;
	top->destroy = CheckedDestroy;
	if (top->failed) // (without one, mongoc_stream_failed destroys the stream)
		top->failed = CheckedFailed;
	// A new stream may have the address of one destroyed without our knowing: start afresh.
	checked[top] = Checked{ReplyReader(), owner};
	return true;
}

std::string ReplyFailure(const void *owner) {
	std::lock_guard<std::mutex> lock(TableMutex());
	auto found = pending_failure.find(owner);
	return found == pending_failure.end() ? "" : found->second;
}

namespace {

// UnconnectedStream returns buffered(socket) over a TCP socket never connected: its first poll
// reports a hang-up and its first write fails, so the handshake on it fails the way a refused
// connection does.
mongoc_stream_t *UnconnectedStream() {
	mongoc_socket_t *sock = mongoc_socket_new(AF_INET, SOCK_STREAM, 0);
	return sock ? mongoc_stream_buffered_new(mongoc_stream_socket_new(sock), 1024) : nullptr;
}

// Initiate opens a connection as libmongoc does by default (user_data is the client), refusing
// while an interrupt is pending, and guards it. It never fails: libmongoc 1.23 calls the initiator
// of a member a hello reply just named (mongoc_topology_reconcile) with the topology's lock held,
// and reports a failed initiation through a callback that takes that lock again — a deadlock
// nothing interrupts. A connection that cannot be opened (a host this server cannot resolve, an
// interrupt pending) is an unconnected socket instead, whose handshake fails as a refused
// connection does; the reason goes to the log.
mongoc_stream_t *Initiate(const mongoc_uri_t *uri, const mongoc_host_list_t *host, void *user_data,
						  bson_error_t *error) {
	mongoc_stream_t *stream = nullptr;
	if (InterruptRequested())
		bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT,
					   "connection to %s not opened: the process is asked to stop", host->host_and_port);
	else
		stream = mongoc_client_default_stream_initiator(uri, host, user_data, error);
	if (!stream) {
		if (!InterruptRequested())
			mongoc_log(MONGOC_LOG_LEVEL_WARNING, "stream", "%s", error->message);
		stream = UnconnectedStream();
		if (!stream)
			return nullptr;
	}
	GuardStream(stream);
	ReadDirectly(stream, user_data);
	return stream;
}

} // namespace

void SetInterruptCheck(InterruptCheck check) {
	interrupt_check = check;
}

void SetWaitReporter(WaitReporter reporter, void *data) {
	wait_reporter = reporter;
	wait_reporter_data = data;
}

void ReportWait(int64_t silent_ms) {
	if (wait_reporter)
		wait_reporter(silent_ms, wait_reporter_data);
}

bool InterruptRequested() {
	return ReaderStopRequested() || (interrupt_check && interrupt_check());
}

void GuardClient(mongoc_client_t *client) {
	// A new client may have the address of one destroyed with a failure not taken.
	{
		std::lock_guard<std::mutex> lock(TableMutex());
		pending_failure.erase(client);
	}
	mongoc_client_set_stream_initiator(client, Initiate, client);
}

} // namespace mongo_river::mongo
