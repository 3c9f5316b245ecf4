// fault_live_test.cpp: failures injected with the failCommand fail point (the peer, or a mongod
// run with enableTestCommands=1; skipped where configureFailPoint is refused): errors are
// classified (history lost, connection trouble, others) and recoverable ones are absorbed.
#include <chrono>
#include <memory>
#include <set>

#include "live.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/copy.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/oplog.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mm = mongo_river::mongo;

namespace {

// FailPoint turns the failCommand fail point on (mode/data as JSON) and off again when destroyed.
class FailPoint {
public:
	FailPoint(live::Writer *writer, const std::string &mode, const std::string &data) : writer_(writer) {
		ok_ = Configure(R"({"configureFailPoint": "failCommand", "mode": )" + mode + R"(, "data": )" + data + "}");
	}
	FailPoint(const FailPoint &) = delete;
	FailPoint &operator=(const FailPoint &) = delete;
	~FailPoint() {
		if (ok_)
			Configure(R"({"configureFailPoint": "failCommand", "mode": "off"})");
	}
	bool Ok() const { return ok_; }

private:
	bool Configure(const std::string &json) {
		bson_t reply;
		bson_error_t error;
		bool ok =
			mongoc_client_command_simple(writer_->Handle(), "admin", live::J(json).get(), nullptr, &reply, &error);
		bson_destroy(&reply);
		return ok;
	}

	live::Writer *writer_;
	bool ok_ = false;
};

#define REQUIRE_FAILPOINT(fp)                                                                                          \
	do {                                                                                                               \
		if (!(fp).Ok())                                                                                                \
			GTEST_SKIP() << "configureFailPoint is not available on this server";                                      \
	} while (0)

mm::StreamOptions Stream(std::vector<mm::Namespace> namespaces) {
	mm::StreamOptions o;
	o.namespaces = std::move(namespaces);
	o.max_await_ms = 200;
	return o;
}

// ReadAll reads batches until the reader is caught up at the source's current time.
std::vector<std::string> ReadAll(mm::Source &source, mm::ChangeStreamReader *reader) {
	std::vector<std::string> ids;
	const mm::Timestamp until = source.OperationTime();
	for (int k = 0; k < 100; ++k) {
		mm::Batch batch = reader->NextBatch(100, 500);
		for (const mm::ChangeEvent &e : batch.events)
			ids.push_back(mm::ToCanonicalJson(e.document_key.get()));
		if (batch.caught_up && batch.reached >= until)
			break;
	}
	return ids;
}

TEST(Faults, ChangeStreamHistoryLostIsDistinct) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("fault286");
	w.Insert(db, "a", R"({"_id": 0})");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	FailPoint fp(&w, R"({"times": 1})", R"({"failCommands": ["getMore"], "errorCode": 286})");
	REQUIRE_FAILPOINT(fp);
	try {
		reader.NextBatch(10, 300);
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kHistoryLost) << e.Message() << " / " << e.Detail();
		EXPECT_EQ(e.ServerCode(), 286);
		EXPECT_FALSE(e.Retryable());
	}
}

TEST(Faults, ChangeStreamSurvivesOneDroppedConnection) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultnet");
	w.Insert(db, "a", R"({"_id": -1})");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	w.Insert(db, "a", R"({"_id": 1})");
	std::vector<std::string> ids = ReadAll(source, &reader);
	w.Insert(db, "a", R"({"_id": 2})");
	{
		// The reader resumes once by itself after a resumable error: nothing is lost or repeated.
		FailPoint fp(&w, R"({"times": 1})", R"({"failCommands": ["getMore"], "closeConnection": true})");
		REQUIRE_FAILPOINT(fp);
		std::vector<std::string> more = ReadAll(source, &reader);
		ids.insert(ids.end(), more.begin(), more.end());
	}
	EXPECT_EQ(ids, (std::vector<std::string>{R"({ "_id" : { "$numberInt" : "1" } })",
											 R"({ "_id" : { "$numberInt" : "2" } })"}));
}

TEST(Faults, ChangeStreamPersistentNetworkTroubleIsRetryable) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultnet2");
	w.Insert(db, "a", R"({"_id": 0})");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	FailPoint fp(&w, R"({"times": 4})", R"({"failCommands": ["getMore", "aggregate"], "closeConnection": true})");
	REQUIRE_FAILPOINT(fp);
	try {
		for (int k = 0; k < 4; ++k)
			reader.NextBatch(10, 300);
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kConnection) << e.Message() << " / " << e.Detail();
		EXPECT_TRUE(e.Retryable());
		EXPECT_EQ(e.Sqlstate().substr(0, 2), "08");
	}
}

// IdJson returns the canonical JSON of the document key {_id: k}, as ReadAll reports it.
std::string IdJson(int k) {
	return R"({ "_id" : { "$numberInt" : ")" + std::to_string(k) + R"(" } })";
}

std::vector<std::string> IdRange(int from, int to) {
	std::vector<std::string> out;
	for (int k = from; k <= to; ++k)
		out.push_back(IdJson(k));
	return out;
}

// kGetMoreError / kGetMoreDrop are failCommand "data" for getMore: a resumable server error
// (InterruptedAtShutdown) and a dropped connection.
constexpr const char *kGetMoreError = R"({"failCommands": ["getMore"], "errorCode": 11600})";
constexpr const char *kGetMoreDrop = R"({"failCommands": ["getMore"], "closeConnection": true})";

// PersistentFailureThrowsSoonAndLosesNothing: every getMore fails (fault: failCommand data); the
// reader resumes once, then gives up with a retryable error quickly (not after libmongoc's
// unbounded resume loop), and a reader opened later from the last position stored delivers every
// event exactly once.
void PersistentFailureThrowsSoonAndLosesNothing(const char *fault) {
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultalways");
	w.Insert(db, "a", R"({"_id": -1})");
	mm::StreamOptions options = Stream({{db, "a"}});
	options.batch_size = 2;
	std::vector<std::string> applied; // events of the batches returned (what a worker applies)
	mm::Position stored;              // the position of the last batch returned (what it stores)
	{
		mm::ChangeStreamReader reader(source, options, mm::Position::Now());
		w.Insert(db, "a", R"({"_id": 1})");
		w.Insert(db, "a", R"({"_id": 2})");
		applied = ReadAll(source, &reader);
		ASSERT_EQ(applied, IdRange(1, 2));
		stored = reader.CurrentPosition();

		FailPoint fp(&w, R"("alwaysOn")", fault);
		REQUIRE_FAILPOINT(fp);
		for (int k = 3; k <= 7; ++k)
			w.Insert(db, "a", R"({"_id": )" + std::to_string(k) + "}");
		const auto started = std::chrono::steady_clock::now();
		try {
			for (int k = 0; k < 100; ++k) {
				mm::Batch batch = reader.NextBatch(100, 500);
				for (const mm::ChangeEvent &e : batch.events)
					applied.push_back(mm::ToCanonicalJson(e.document_key.get()));
				stored = batch.position;
			}
			FAIL() << "expected a SourceError while every getMore fails";
		} catch (const mm::SourceError &e) {
			const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
			EXPECT_LT(seconds, 15.0) << e.Message();
			EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kConnection) << e.Message() << " / " << e.Detail();
			EXPECT_TRUE(e.Retryable());
			EXPECT_EQ(e.Sqlstate(), "08006");
			EXPECT_NE(e.Message().find("keeps failing"), std::string::npos) << e.Message();
			EXPECT_FALSE(e.Detail().empty());
		}
	}
	// The fail point is off: a new reader from the stored position delivers the rest, once.
	w.Insert(db, "a", R"({"_id": 8})");
	mm::ChangeStreamReader again(source, options, mm::Position::FromJson(stored.ToJson()));
	std::vector<std::string> rest = ReadAll(source, &again);
	applied.insert(applied.end(), rest.begin(), rest.end());
	EXPECT_EQ(applied, IdRange(1, 8));
}

TEST(Faults, ChangeStreamGetMoreAlwaysFailingThrowsSoonAndLosesNothing) {
	REQUIRE_SOURCE();
	PersistentFailureThrowsSoonAndLosesNothing(kGetMoreError);
}

TEST(Faults, ChangeStreamGetMoreAlwaysDroppedThrowsSoonAndLosesNothing) {
	REQUIRE_SOURCE();
	PersistentFailureThrowsSoonAndLosesNothing(kGetMoreDrop);
}

// OneFailureIsAbsorbedByTheResume: one failed getMore (fault: failCommand data), in the middle of
// the events (the reader has returned part of a server batch): the one resume absorbs it, with no
// event lost or repeated.
void OneFailureIsAbsorbedByTheResume(const char *fault) {
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultonce");
	w.Insert(db, "a", R"({"_id": -1})");
	mm::StreamOptions options = Stream({{db, "a"}});
	options.batch_size = 3;
	mm::ChangeStreamReader reader(source, options, mm::Position::Now());
	for (int k = 0; k < 5; ++k)
		w.Insert(db, "a", R"({"_id": )" + std::to_string(k) + "}");
	std::vector<std::string> ids;
	// The getMores ask for 1 event until one came, then at most twice the last batch's: the second
	// event read is the first of a server batch of two.
	for (int k = 0; k < 2; ++k) {
		mm::Batch first = reader.NextBatch(1, 1000);
		for (const mm::ChangeEvent &e : first.events)
			ids.push_back(mm::ToCanonicalJson(e.document_key.get()));
	}
	ASSERT_EQ(ids, IdRange(0, 1));
	{
		FailPoint fp(&w, R"({"times": 1})", fault);
		REQUIRE_FAILPOINT(fp);
		for (int k = 5; k < 10; ++k)
			w.Insert(db, "a", R"({"_id": )" + std::to_string(k) + "}");
		std::vector<std::string> more = ReadAll(source, &reader); // must not throw
		ids.insert(ids.end(), more.begin(), more.end());
	}
	w.Insert(db, "a", R"({"_id": 10})");
	std::vector<std::string> last = ReadAll(source, &reader);
	ids.insert(ids.end(), last.begin(), last.end());
	EXPECT_EQ(ids, IdRange(0, 10));
}

TEST(Faults, ChangeStreamAbsorbsOneFailedGetMore) {
	REQUIRE_SOURCE();
	OneFailureIsAbsorbedByTheResume(kGetMoreError);
}

TEST(Faults, ChangeStreamAbsorbsOneDroppedGetMore) {
	REQUIRE_SOURCE();
	OneFailureIsAbsorbedByTheResume(kGetMoreDrop);
}

// A reader reopened after an invalidate (startAfter) whose first getMore fails resumes (from
// startAfter, as nothing was returned yet) and delivers the next event.
TEST(Faults, ChangeStreamStartAfterSurvivesAFailedGetMore) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultstart");
	w.Insert(db, "a", R"({"_id": 0})");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	w.Drop(db, "a");
	mm::Batch batch;
	for (int k = 0; k < 40 && !batch.invalidated; ++k)
		batch = reader.NextBatch(100, 500);
	ASSERT_TRUE(batch.invalidated);
	ASSERT_EQ(batch.position.kind, mm::Position::Kind::kStartAfter);
	mm::ChangeStreamReader again(source, Stream({{db, "a"}}), batch.position);
	FailPoint fp(&w, R"({"times": 1})", kGetMoreError);
	REQUIRE_FAILPOINT(fp);
	w.Insert(db, "a", R"({"_id": 1})");
	EXPECT_EQ(ReadAll(source, &again), IdRange(1, 1));
}

TEST(Faults, OtherServerErrorsCarryTheirCode) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultother");
	w.Insert(db, "a", R"({"_id": 0})");
	FailPoint fp(&w, R"({"times": 1})", R"({"failCommands": ["aggregate"], "errorCode": 2})");
	REQUIRE_FAILPOINT(fp);
	try {
		mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kServer);
		EXPECT_EQ(e.ServerCode(), 2);
		EXPECT_NE(e.Detail().find("server error code 2"), std::string::npos) << e.Detail();
		EXPECT_EQ(e.Sqlstate(), "58000");
	}
}

TEST(Faults, ScanReopensALostCursor) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultscan");
	for (int k = 0; k < 30; ++k)
		w.Insert(db, "a", R"({"_id": )" + std::to_string(k) + "}");
	mm::CollectionScan scan(source, db, "a", nullptr, 4);
	std::vector<std::string> ids;
	std::vector<live::Bson> first = scan.NextBatch(6);
	for (const live::Bson &d : first)
		ids.push_back(mm::ToCanonicalJson(d.get()));
	{
		FailPoint fp(&w, R"({"times": 1})", R"({"failCommands": ["getMore"], "errorCode": 43})");
		REQUIRE_FAILPOINT(fp);
		for (auto batch = scan.NextBatch(6); !batch.empty(); batch = scan.NextBatch(6))
			for (const live::Bson &d : batch)
				ids.push_back(mm::ToCanonicalJson(d.get()));
	}
	EXPECT_EQ(ids.size(), 30u);
	EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 30u);
}

TEST(Faults, ScanDoesNotRetryPermissionErrors) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultperm");
	w.Insert(db, "a", R"({"_id": 1})");
	FailPoint fp(&w, R"({"times": 1})", R"({"failCommands": ["find"], "errorCode": 13})");
	REQUIRE_FAILPOINT(fp);
	mm::CollectionScan scan(source, db, "a");
	try {
		scan.NextBatch(10);
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Sqlstate(), "42501") << e.Message();
		EXPECT_FALSE(e.Retryable());
	}
}

TEST(Faults, OplogTailOvertakenIsHistoryLost) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("faultoplog");
	mm::OplogOptions oo;
	oo.namespaces = {{db, "a"}};
	oo.max_await_ms = 200;
	mm::OplogReader reader(source, oo, mm::Position::Now());
	reader.NextBatch(10, 300); // the tailable cursor is open: the next read is a getMore
	FailPoint fp(&w, R"({"times": 1})", R"({"failCommands": ["getMore"], "errorCode": 136})");
	REQUIRE_FAILPOINT(fp);
	try {
		reader.NextBatch(10, 300);
		FAIL() << "expected a SourceError";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kHistoryLost) << e.Message() << " / " << e.Detail();
	}
}

} // namespace
