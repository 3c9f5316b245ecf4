// stream_guard_test.cpp: guarded streams read every byte across slices and give up on an interrupt.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "mongo_river/mongo/stream_guard.hpp"

namespace mongo_river::mongo {
namespace {

std::atomic<bool> interrupt{false};
bool Check() {
	return interrupt.load();
}

// Server listens on a loopback port; Serve(send) accepts one connection and runs send on it.
struct Server {
	int listener = -1;
	uint16_t port = 0;
	std::thread thread;
	Server() {
		listener = socket(AF_INET, SOCK_STREAM, 0);
		sockaddr_in addr{};
		addr.sin_family = AF_INET;
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
		listen(listener, 1);
		socklen_t len = sizeof(addr);
		getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len);
		port = ntohs(addr.sin_port);
	}
	template <typename F> void Serve(F send) {
		thread = std::thread([this, send] {
			int conn = accept(listener, nullptr, nullptr);
			send(conn);
			close(conn);
		});
	}
	~Server() {
		if (thread.joinable())
			thread.join();
		close(listener);
	}
};

// Connect returns buffered(socket) to port, guarded, as the default initiator builds it.
mongoc_stream_t *Connect(uint16_t port) {
	mongoc_socket_t *sock = mongoc_socket_new(AF_INET, SOCK_STREAM, 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(port);
	EXPECT_EQ(mongoc_socket_connect(sock, reinterpret_cast<sockaddr *>(&addr), sizeof(addr), 1000), 0);
	mongoc_stream_t *stream = mongoc_stream_buffered_new(mongoc_stream_socket_new(sock), 1024);
	GuardStream(stream);
	return stream;
}

double Seconds(std::chrono::steady_clock::time_point since) {
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(StreamGuard, ReadsEveryByteOfAReplyThatArrivesInPiecesAcrossSlices) {
	SetInterruptCheck(Check);
	interrupt = false;
	std::string expected;
	for (int i = 0; i < 3000; ++i)
		expected += static_cast<char>('a' + i % 26);
	Server server;
	server.Serve([&](int conn) {
		for (size_t at = 0; at < expected.size(); at += 700) {
			std::this_thread::sleep_for(std::chrono::milliseconds(3 * kGuardSliceMs / 2));
			send(conn, expected.data() + at, std::min<size_t>(700, expected.size() - at), 0);
		}
	});
	mongoc_stream_t *stream = Connect(server.port);
	std::string got(expected.size(), '\0');
	ssize_t n = mongoc_stream_read(stream, got.data(), got.size(), got.size(), 10000);
	EXPECT_EQ(n, static_cast<ssize_t>(expected.size()));
	EXPECT_EQ(got, expected);
	mongoc_stream_destroy(stream);
	SetInterruptCheck(nullptr);
}

TEST(StreamGuard, TimesOutAsTheSocketTimeoutSays) {
	SetInterruptCheck(Check);
	interrupt = false;
	Server server;
	server.Serve([](int conn) {
		char byte;
		recv(conn, &byte, 1, 0); // silent until the client closes
	});
	mongoc_stream_t *stream = Connect(server.port);
	char buffer[16];
	auto start = std::chrono::steady_clock::now();
	EXPECT_EQ(mongoc_stream_read(stream, buffer, sizeof(buffer), sizeof(buffer), 450), -1);
	EXPECT_GE(Seconds(start), 0.4);
	EXPECT_LT(Seconds(start), 1.0);
	EXPECT_TRUE(mongoc_stream_timed_out(mongoc_stream_get_base_stream(stream)));
	mongoc_stream_destroy(stream);
	SetInterruptCheck(nullptr);
}

TEST(StreamGuard, GivesUpASilentReadWhenInterrupted) {
	SetInterruptCheck(Check);
	interrupt = false;
	Server server;
	server.Serve([](int conn) {
		char byte;
		recv(conn, &byte, 1, 0);
	});
	mongoc_stream_t *stream = Connect(server.port);
	std::thread interrupter([] {
		std::this_thread::sleep_for(std::chrono::milliseconds(300));
		interrupt = true;
	});
	char buffer[16];
	auto start = std::chrono::steady_clock::now();
	EXPECT_EQ(mongoc_stream_read(stream, buffer, sizeof(buffer), sizeof(buffer), 30000), -1);
	EXPECT_LT(Seconds(start), 0.3 + 3.0 * kGuardSliceMs / 1000);
	EXPECT_TRUE(InterruptRequested());
	interrupter.join();
	mongoc_stream_destroy(stream);
	interrupt = false;
	SetInterruptCheck(nullptr);
}

TEST(StreamGuard, AClosedConnectionFailsAtOnceEvenAfterSilentSlices) {
	SetInterruptCheck(Check);
	interrupt = false;
	Server server;
	server.Serve([](int) { std::this_thread::sleep_for(std::chrono::milliseconds(3 * kGuardSliceMs)); });
	mongoc_stream_t *stream = Connect(server.port);
	char buffer[16];
	auto start = std::chrono::steady_clock::now();
	EXPECT_EQ(mongoc_stream_read(stream, buffer, sizeof(buffer), sizeof(buffer), 20000), -1);
	EXPECT_LT(Seconds(start), 3.0 * kGuardSliceMs / 1000 + 1.0);
	mongoc_stream_destroy(stream);
	SetInterruptCheck(nullptr);
}

} // namespace
// OpMsg returns an OP_MSG reply whose body is {s: text}.
std::string OpMsg(const std::string &text) {
	bson_t doc = BSON_INITIALIZER;
	bson_append_utf8(&doc, "s", 1, text.data(), static_cast<int>(text.size()));
	std::string body(reinterpret_cast<const char *>(bson_get_data(&doc)), doc.len);
	bson_destroy(&doc);
	uint32_t header[4] = {static_cast<uint32_t>(16 + 4 + 1 + body.size()), 1, 1, 2013};
	return std::string(reinterpret_cast<const char *>(header), 16) + std::string(5, '\0') + body;
}

// Answer sends replies on conn, then reads the requests until the client closes (closing a socket
// with requests unread would reset the connection, losing replies not yet read).
void Answer(int conn, const std::string &replies) {
	for (size_t at = 0; at < replies.size(); at += 65536)
		send(conn, replies.data() + at, std::min<size_t>(65536, replies.size() - at), 0);
	shutdown(conn, SHUT_WR);
	char drain[4096];
	while (recv(conn, drain, sizeof(drain), 0) > 0) {
	}
}

// ReadReply reads one reply of size bytes as libmongoc does: its length, then the rest.
void ReadReply(mongoc_stream_t *stream, size_t size) {
	std::string buffer(size, '\0');
	ASSERT_EQ(mongoc_stream_read(stream, buffer.data(), 4, 4, 10000), 4);
	ASSERT_EQ(mongoc_stream_read(stream, buffer.data() + 4, size - 4, size - 4, 10000), static_cast<ssize_t>(size - 4))
		<< ReplyFailure();
}

// Ask writes count requests (OP_MSG, requestID 1, as OpMsg's replies answer) on stream.
void Ask(mongoc_stream_t *stream, int count) {
	for (int i = 0; i < count; ++i) {
		std::string request = OpMsg("getMore");
		request.replace(8, 4, std::string(4, '\0')); // responseTo 0
		mongoc_iovec_t iov;
		iov.iov_base = request.data();
		iov.iov_len = request.size();
		ASSERT_EQ(mongoc_stream_writev(stream, &iov, 1, 1000), static_cast<ssize_t>(request.size()));
	}
}

TEST(StreamGuard, ReadDirectlyBypassesTheBufferedStreamAndLosesNoByte) {
	SetInterruptCheck(nullptr);
	std::string text(3 * 1024 * 1024, '\0');
	for (size_t i = 0; i < text.size(); ++i)
		text[i] = static_cast<char>('a' + i % 26);
	const std::string expected = OpMsg(text) + OpMsg("second");
	Server server;
	server.Serve([&](int conn) { Answer(conn, expected); });
	mongoc_stream_t *stream = Connect(server.port);
	mongoc_stream_t *under = mongoc_stream_get_base_stream(stream);
	EXPECT_FALSE(ReadDirectly(under)) << "a socket stream is no buffered stream";
	ASSERT_TRUE(ReadDirectly(stream));
	EXPECT_TRUE(ReadDirectly(stream)) << "a second call changes nothing";
	Ask(stream, 2);
	// As libmongoc reads a reply: its length first, then the rest, each with min_bytes = count.
	std::string got(expected.size(), '\0');
	size_t at = 0;
	while (at < got.size()) {
		uint32_t length;
		ASSERT_EQ(mongoc_stream_read(stream, got.data() + at, 4, 4, 10000), 4);
		std::memcpy(&length, got.data() + at, 4);
		ssize_t n = mongoc_stream_read(stream, got.data() + at + 4, length - 4, length - 4, 10000);
		ASSERT_EQ(n, static_cast<ssize_t>(length - 4)) << ReplyFailure();
		at += length;
	}
	EXPECT_EQ(got, expected);
	EXPECT_EQ(ReplyFailure(), "");
	mongoc_stream_destroy(stream);
}

TEST(StreamGuard, AMalformedReplyFailsItsReadAndEveryLaterOne) {
	SetInterruptCheck(nullptr);
	std::string bad = OpMsg("x");
	bad[bad.size() - 1] = 'x'; // the body's terminator
	const std::string sent = OpMsg("first") + bad + OpMsg("never read");
	Server server;
	server.Serve([&](int conn) { Answer(conn, sent); });
	mongoc_stream_t *stream = Connect(server.port);
	ASSERT_TRUE(ReadDirectly(stream));
	Ask(stream, 3);
	ReadReply(stream, OpMsg("first").size());
	char buffer[256];
	ASSERT_EQ(mongoc_stream_read(stream, buffer, 4, 4, 10000), 4) << "the length alone is not yet refused";
	errno = 0;
	EXPECT_EQ(mongoc_stream_read(stream, buffer, bad.size() - 4, bad.size() - 4, 10000), -1);
	EXPECT_EQ(errno, EPROTO);
	EXPECT_EQ(mongoc_stream_read(stream, buffer, 4, 4, 10000), -1) << "the connection stays refused";
	std::string why = ReplyFailure();
	EXPECT_NE(why.find("malformed reply"), std::string::npos) << why;
	EXPECT_EQ(ReplyFailure(), why) << "until a good reply is read";
	mongoc_stream_failed(stream);
}

TEST(StreamGuard, AReplyNoRequestAwaitsFailsItsRead) {
	SetInterruptCheck(nullptr);
	const std::string sent = OpMsg("asked") + OpMsg("unasked");
	Server server;
	server.Serve([&](int conn) { Answer(conn, sent); });
	mongoc_stream_t *stream = Connect(server.port);
	ASSERT_TRUE(ReadDirectly(stream));
	Ask(stream, 1);
	const size_t size = OpMsg("asked").size();
	ReadReply(stream, size);
	char buffer[256];
	ASSERT_EQ(mongoc_stream_read(stream, buffer, 4, 4, 10000), 4);
	EXPECT_EQ(mongoc_stream_read(stream, buffer, size - 2, size - 2, 10000), -1) << "a second reply to one request";
	EXPECT_NE(ReplyFailure().find("reply to no request"), std::string::npos);
	mongoc_stream_failed(stream);
}

} // namespace mongo_river::mongo
