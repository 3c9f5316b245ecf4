// stream_live_test.cpp: ChangeStreamReader and OplogReader against a live MongoDB (MONGO_URI;
// MONGO_SMALL_OPLOG_URI for the history-lost test, a peer started with --oplog-size 10).
#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "live.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/copy.hpp"
#include "mongo_river/mongo/diff.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/oplog.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mm = mongo_river::mongo;

namespace {

std::vector<std::string> Summaries(const std::vector<mm::ChangeEvent> &events) {
	std::vector<std::string> out;
	for (const mm::ChangeEvent &e : events)
		out.push_back(live::Summary(e));
	return out;
}

std::function<mm::Batch()> Next(mm::ChangeStreamReader *r, size_t max_events = 100, int64_t max_ms = 1000) {
	return [r, max_events, max_ms]() { return r->NextBatch(max_events, max_ms); };
}

std::function<mm::Batch()> Next(mm::OplogReader *r, size_t max_events = 100, int64_t max_ms = 1000) {
	return [r, max_events, max_ms]() { return r->NextBatch(max_events, max_ms); };
}

mm::StreamOptions Stream(std::vector<mm::Namespace> namespaces) {
	mm::StreamOptions o;
	o.namespaces = std::move(namespaces);
	return o;
}

TEST(ChangeStream, CrudOnTwoNamespacesOfOneDatabase) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("cs2");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}, {db, "b"}}), mm::Position::Now());
	w.Insert(db, "a", R"({"_id": 1, "x": 1, "nested": {"v": 1}})");
	w.Insert(db, "b", R"({"_id": "k", "y": 1})");
	w.Insert(db, "c", R"({"_id": 1})");
	w.Update(db, "a", R"({"_id": 1})", R"({"$set": {"nested.v": 2}})");
	w.Update(db, "a", R"({"_id": 1})", R"({"$unset": {"x": ""}})");
	w.Replace(db, "b", R"({"_id": "k"})", R"({"_id": "k", "y": 2})");
	w.Delete(db, "a", R"({"_id": 1})");
	w.Delete(db, "b", R"({"_id": "k"})");
	std::vector<mm::ChangeEvent> events = live::ReadUntil(Next(&reader), source.OperationTime());
	std::vector<std::string> expected = {
		"insert " + db +
			R"(.a key={ "_id" : { "$numberInt" : "1" } } doc={ "_id" : { "$numberInt" : "1" }, "x" : { "$numberInt" : "1" }, "nested" : { "v" : { "$numberInt" : "1" } } })",
		"insert " + db + R"(.b key={ "_id" : "k" } doc={ "_id" : "k", "y" : { "$numberInt" : "1" } })",
		"update " + db +
			R"(.a key={ "_id" : { "$numberInt" : "1" } } set={ "nested.v" : { "$numberInt" : "2" } } unset= truncated=)",
		"update " + db + R"(.a key={ "_id" : { "$numberInt" : "1" } } set={ } unset=x, truncated=)",
		"replace " + db + R"(.b key={ "_id" : "k" } doc={ "_id" : "k", "y" : { "$numberInt" : "2" } })",
		"delete " + db + R"(.a key={ "_id" : { "$numberInt" : "1" } })",
		"delete " + db + R"(.b key={ "_id" : "k" })",
	};
	EXPECT_EQ(Summaries(events), expected);
	for (const mm::ChangeEvent &e : events) {
		EXPECT_NE(e.resume_token, nullptr);
		EXPECT_FALSE(e.cluster_time.IsZero());
		EXPECT_TRUE(e.wall_time_ms.has_value());
	}
}

TEST(ChangeStream, ClusterScopeOverTwoDatabases) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db1 = live::UniqueDb("csa"), db2 = live::UniqueDb("csb");
	mm::ChangeStreamReader reader(source, Stream({{db1, "a"}, {db2, ""}}), mm::Position::Now());
	w.Insert(db1, "a", R"({"_id": 1})");
	w.Insert(db1, "z", R"({"_id": 2})");
	w.Insert(db2, "any", R"({"_id": 3})");
	std::vector<std::string> got = Summaries(live::ReadUntil(Next(&reader), source.OperationTime()));
	ASSERT_EQ(got.size(), 2u) << testing::PrintToString(got);
	EXPECT_EQ(got[0].rfind("insert " + db1 + ".a ", 0), 0u) << got[0];
	EXPECT_EQ(got[1].rfind("insert " + db2 + ".any ", 0), 0u) << got[1];
}

TEST(ChangeStream, TransactionIsNeverSplitAcrossBatches) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("cstxn");
	w.Insert(db, "a", R"({"_id": "before"})"); // the collection exists before the transaction
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	w.Insert(db, "a", R"({"_id": "plain1"})");
	std::vector<std::vector<std::string>> txn;
	for (int k = 0; k < 5; ++k)
		txn.push_back({db, "a", R"({"_id": "t)" + std::to_string(k) + "\"}"});
	w.Transaction(txn);
	w.Insert(db, "a", R"({"_id": "plain2"})");
	std::vector<size_t> sizes;
	std::vector<mm::ChangeEvent> events = live::ReadUntil(Next(&reader, 2, 1000), source.OperationTime(), 20, &sizes);
	ASSERT_EQ(events.size(), 7u) << testing::PrintToString(Summaries(events));
	// Find the batch of each event; all transaction events must share one.
	std::vector<size_t> batch_of;
	for (size_t b = 0; b < sizes.size(); ++b)
		batch_of.insert(batch_of.end(), sizes[b], b);
	std::set<size_t> txn_batches;
	for (size_t k = 0; k < events.size(); ++k) {
		if (events[k].InTransaction())
			txn_batches.insert(batch_of[k]);
	}
	EXPECT_EQ(txn_batches.size(), 1u) << "batch sizes " << testing::PrintToString(sizes);
	size_t in_txn =
		std::count_if(events.begin(), events.end(), [](const mm::ChangeEvent &e) { return e.InTransaction(); });
	EXPECT_EQ(in_txn, 5u);
	for (size_t size : sizes)
		EXPECT_TRUE(size <= 2 || size == 5 || size == 6) << "batch sizes " << testing::PrintToString(sizes);
}

TEST(ChangeStream, ResumeFromStoredPositionLosesAndRepeatsNothing) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("csresume");
	w.Insert(db, "a", R"({"_id": -1})");
	std::string stored;
	{
		mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
		stored = reader.CurrentPosition().ToJson();
	}
	for (int k = 0; k < 10; ++k)
		w.Insert(db, "a", R"({"_id": )" + std::to_string(k) + "}");
	const mm::Timestamp until = source.OperationTime();
	std::vector<std::string> seen;
	for (int round = 0; round < 100; ++round) {
		// Each round is a "restart": a new reader from the stored text, one batch of 3, store.
		mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::FromJson(stored));
		mm::Batch batch = reader.NextBatch(3, 2000);
		for (const mm::ChangeEvent &e : batch.events)
			seen.push_back(mm::ToCanonicalJson(e.document_key.get()));
		stored = batch.position.ToJson();
		if (batch.caught_up && batch.reached >= until)
			break;
	}
	std::vector<std::string> expected;
	for (int k = 0; k < 10; ++k)
		expected.push_back(R"({ "_id" : { "$numberInt" : ")" + std::to_string(k) + R"(" } })");
	EXPECT_EQ(seen, expected);
}

TEST(ChangeStream, QuietStreamPositionAdvances) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("csquiet");
	w.Insert(db, "a", R"({"_id": 0})");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	mm::Batch first = reader.NextBatch(10, 200);
	EXPECT_TRUE(first.events.empty());
	EXPECT_TRUE(first.caught_up);
	for (int k = 0; k < 5; ++k)
		w.Insert(db, "unmapped", R"({"_id": )" + std::to_string(k) + "}");
	const mm::Timestamp until = source.OperationTime();
	mm::Position last;
	std::vector<mm::ChangeEvent> events = live::ReadUntil(Next(&reader), until, 20, nullptr, &last);
	EXPECT_TRUE(events.empty());
	EXPECT_GE(last.ClusterTime(), until) << "the stored position must move past unrelated writes: " << last.ToJson();
	EXPECT_NE(last.ToJson(), first.position.ToJson());
}

TEST(ChangeStream, InvalidateThenStartAfter) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("csinval");
	w.Insert(db, "a", R"({"_id": 0})");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now()); // collection scope
	w.Insert(db, "a", R"({"_id": 1})");
	w.Drop(db, "a");
	std::vector<mm::ChangeEvent> events;
	mm::Batch batch;
	for (int k = 0; k < 40 && !batch.invalidated; ++k) {
		batch = reader.NextBatch(100, 500);
		for (mm::ChangeEvent &e : batch.events)
			events.push_back(std::move(e));
	}
	ASSERT_TRUE(batch.invalidated) << testing::PrintToString(Summaries(events));
	ASSERT_EQ(events.size(), 3u) << testing::PrintToString(Summaries(events));
	EXPECT_EQ(events[0].op, mm::OperationType::kInsert);
	EXPECT_EQ(events[1].op, mm::OperationType::kDrop);
	EXPECT_EQ(events[2].op, mm::OperationType::kInvalidate);
	EXPECT_EQ(batch.position.kind, mm::Position::Kind::kStartAfter);
	EXPECT_TRUE(reader.NextBatch(10, 10).invalidated);

	w.Insert(db, "a", R"({"_id": 2})");
	mm::ChangeStreamReader again(source, Stream({{db, "a"}}), mm::Position::FromJson(batch.position.ToJson()));
	std::vector<std::string> after = Summaries(live::ReadUntil(Next(&again), source.OperationTime()));
	ASSERT_EQ(after.size(), 1u) << testing::PrintToString(after);
	EXPECT_EQ(after[0].rfind("insert " + db + ".a", 0), 0u);
}

// Commands records the commands a client sends (libmongoc command monitoring), handshakes left out.
struct Commands {
	struct Command {
		std::string name;
		std::string db;
		uint32_t server_id;
		live::Bson body;
	};
	std::vector<Command> sent;

	explicit Commands(mongoc_client_t *client) : client_(client) {
		mongoc_apm_callbacks_t *callbacks = mongoc_apm_callbacks_new();
		mongoc_apm_set_command_started_cb(callbacks, &Commands::Started);
		mongoc_client_set_apm_callbacks(client, callbacks, this);
		mongoc_apm_callbacks_destroy(callbacks);
	}
	Commands(const Commands &) = delete;
	Commands &operator=(const Commands &) = delete;
	// ~Commands stops recording (the client outlives this object and still sends endSessions).
	~Commands() { mongoc_client_set_apm_callbacks(client_, nullptr, nullptr); }
	static void Started(const mongoc_apm_command_started_t *event) {
		auto *self = static_cast<Commands *>(mongoc_apm_command_started_get_context(event));
		const std::string name = mongoc_apm_command_started_get_command_name(event);
		if (name == "hello" || name == "isMaster" || name == "ismaster")
			return;
		self->sent.push_back({name, mongoc_apm_command_started_get_database_name(event),
							  mongoc_apm_command_started_get_server_id(event),
							  mm::CopyBson(mongoc_apm_command_started_get_command(event))});
	}
	// Json returns the command's field at dotted path as canonical JSON ("" when absent).
	static std::string Json(const Command &c, const char *path) {
		bson_iter_t iter, found;
		if (!bson_iter_init(&iter, c.body.get()) || !bson_iter_find_descendant(&iter, path, &found))
			return "";
		return mm::ToCanonicalJson(mm::WrapValue("v", bson_iter_value(&found)).get());
	}

private:
	mongoc_client_t *client_;
};

TEST(ChangeStream, CursorCommandsShareOneSessionAndServerAndAreKilled) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db1 = live::UniqueDb("cscmd"), db2 = live::UniqueDb("cscmd");
	w.Insert(db1, "a", R"({"_id": 0})");
	Commands commands(source.Handle());
	{
		// Cluster scope: aggregate: 1 on admin with allChangesForCluster, getMores on $cmd.aggregate.
		mm::StreamOptions options = Stream({{db1, "a"}, {db2, ""}});
		options.batch_size = 7;
		options.max_await_ms = 300;
		mm::ChangeStreamReader reader(source, options, mm::Position::Now());
		for (int i = 1; i <= 20; ++i)
			w.Insert(db1, "a", "{\"_id\": " + std::to_string(i) + "}");
		EXPECT_EQ(live::ReadUntil(Next(&reader), source.OperationTime()).size(), 20u);
	}
	std::vector<const Commands::Command *> cursor;
	for (const Commands::Command &c : commands.sent) {
		if (c.name == "aggregate" || c.name == "getMore" || c.name == "killCursors")
			cursor.push_back(&c);
	}
	ASSERT_GE(cursor.size(), 3u);
	const Commands::Command &aggregate = *cursor.front();
	ASSERT_EQ(aggregate.name, "aggregate");
	EXPECT_EQ(aggregate.db, "admin");
	EXPECT_EQ(Commands::Json(aggregate, "aggregate"), R"({ "v" : { "$numberInt" : "1" } })");
	EXPECT_EQ(Commands::Json(aggregate, "pipeline.0.$changeStream.allChangesForCluster"), R"({ "v" : true })");
	// One event first (their size is not known yet), then at most twice the last batch's events, up
	// to the stream's batch size for small events.
	EXPECT_EQ(Commands::Json(aggregate, "cursor.batchSize"), R"({ "v" : { "$numberInt" : "1" } })");
	EXPECT_NE(Commands::Json(aggregate, "pipeline.1.$match"), "") << "BuildStreamPipeline's stage follows";
	EXPECT_EQ(Commands::Json(aggregate, "pipeline.2"), "");
	const std::string lsid = Commands::Json(aggregate, "lsid");
	EXPECT_NE(lsid, "");
	for (const Commands::Command *c : cursor) {
		EXPECT_EQ(Commands::Json(*c, "lsid"), lsid) << c->name << " must run in the cursor's session";
		EXPECT_EQ(c->server_id, aggregate.server_id) << c->name << " must go to the aggregate's server";
		EXPECT_EQ(c->db, "admin") << c->name;
	}
	const Commands::Command &kill = *cursor.back();
	EXPECT_EQ(kill.name, "killCursors") << "the destructor kills the server cursor";
	EXPECT_EQ(Commands::Json(kill, "killCursors"), R"({ "v" : "$cmd.aggregate" })");
	int asked = 1, most = 0;
	for (size_t k = 1; k + 1 < cursor.size(); ++k) {
		const Commands::Command &more = *cursor[k];
		EXPECT_EQ(more.name, "getMore");
		EXPECT_EQ(Commands::Json(more, "collection"), R"({ "v" : "$cmd.aggregate" })");
		// The await time, or 1 ms for a getMore that goes on past a full reply with events in hand.
		const std::string wait = Commands::Json(more, "maxTimeMS");
		EXPECT_TRUE(wait == R"({ "v" : { "$numberLong" : "300" } })" || wait == R"({ "v" : { "$numberLong" : "1" } })")
			<< wait;
		bson_iter_t iter;
		ASSERT_TRUE(bson_iter_init_find(&iter, more.body.get(), "batchSize") && BSON_ITER_HOLDS_INT32(&iter));
		const int batch = bson_iter_int32(&iter);
		EXPECT_TRUE(batch >= 1 && batch <= 7 && batch <= 2 * asked)
			<< "getMore " << k << " asks " << batch << " after " << asked;
		asked = batch;
		most = std::max(most, batch);
		EXPECT_EQ(Commands::Json(more, "getMore"), Commands::Json(kill, "cursors.0"));
		EXPECT_EQ(Commands::Json(more, "readConcern"), "") << "getMore takes no read concern";
	}
	EXPECT_EQ(most, 7) << "20 small events: the getMores reach the stream's batch size";
}

// A backlog is read in one batch: its replies grow from one event (each at most twice the last),
// and a batch goes on past a full reply with a getMore that does not wait, so the events in hand are
// not held back by an await and the ramp's replies are not a transaction each.
TEST(ChangeStream, BacklogReadInOneBatchAcrossGrowingReplies) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("csramp");
	w.Insert(db, "a", R"({"_id": 0})");
	Commands commands(source.Handle());
	mm::StreamOptions options = Stream({{db, "a"}});
	options.batch_size = 1000;
	options.max_await_ms = 2000;
	mm::ChangeStreamReader reader(source, options, mm::Position::Now());
	for (int i = 1; i <= 100; ++i)
		w.Insert(db, "a", "{\"_id\": " + std::to_string(i) + "}");
	mm::Batch batch = reader.NextBatch(1000, 60000);
	EXPECT_EQ(batch.events.size(), 100u) << "the whole backlog in one batch";
	std::vector<std::string> waits; // each getMore's maxTimeMS
	for (const Commands::Command &c : commands.sent)
		if (c.name == "getMore")
			waits.push_back(Commands::Json(c, "maxTimeMS"));
	ASSERT_GE(waits.size(), 3u) << "replies of 1, 2, 4, ... events";
	const std::string one = R"({ "v" : { "$numberLong" : "1" } })";
	// The first getMore has no event in hand (the aggregate's reply was empty): it waits. Every later
	// one follows a full reply, with events in hand: it does not.
	EXPECT_EQ(waits[0], R"({ "v" : { "$numberLong" : "2000" } })");
	for (size_t k = 1; k < waits.size(); ++k)
		EXPECT_EQ(waits[k], one) << "getMore " << k;
}

TEST(CollectionScan, FindAsksForOneDocumentAndGetMoresForTheFittedBatch) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("scanbatch");
	for (int i = 0; i < 30; ++i)
		w.Insert(db, "small", "{\"_id\": " + std::to_string(i) + "}");
	const std::string blob(3 * 1024 * 1024, 'x');
	for (int i = 0; i < 3; ++i)
		w.Insert(db, "large", "{\"_id\": " + std::to_string(i) + ", \"s\": \"" + blob + "\"}");
	Commands commands(source.Handle());
	size_t small = 0, large = 0;
	{
		mm::CollectionScan scan(source, db, "small", nullptr, 10);
		for (auto batch = scan.NextBatch(100); !batch.empty(); batch = scan.NextBatch(100))
			small += batch.size();
	}
	{
		mm::CollectionScan scan(source, db, "large", nullptr, 10);
		for (auto batch = scan.NextBatch(100); !batch.empty(); batch = scan.NextBatch(100))
			for (const live::Bson &doc : batch) {
				bson_iter_t iter;
				ASSERT_TRUE(bson_iter_init_find(&iter, doc.get(), "s"));
				EXPECT_EQ(bson_iter_utf8(&iter, nullptr), blob) << "a borrowed document reads whole";
				++large;
			}
	}
	EXPECT_EQ(small, 30u);
	EXPECT_EQ(large, 3u);
	std::vector<std::string> sizes; // "find 1", "getMore 10", ... in order, the collection's name first
	for (const Commands::Command &c : commands.sent)
		if (c.name == "find" || c.name == "getMore")
			sizes.push_back(c.name + " " + Commands::Json(c, c.name == "find" ? "find" : "collection") + " " +
							Commands::Json(c, "batchSize"));
	const std::string one = R"({ "v" : { "$numberLong" : "1" } })";
	const std::string ten = R"({ "v" : { "$numberLong" : "10" } })";
	const std::string small_name = R"({ "v" : "small" })", large_name = R"({ "v" : "large" })";
	// 30 small documents: find 1, then getMores doubling (at most the documents read so far) up to
	// the scan's batch size 10 (4 MiB holds more). 3 large ones (3 MiB: one per 4 MiB): find 1, then
	// getMores of 1.
	std::vector<std::string> want = {"find " + small_name + " " + one};
	for (int n : {1, 2, 4, 8})
		want.push_back("getMore " + small_name + " " + R"({ "v" : { "$numberLong" : ")" + std::to_string(n) +
					   R"(" } })");
	for (int i = 0; i < 2; ++i)
		want.push_back("getMore " + small_name + " " + ten);
	want.push_back("find " + large_name + " " + one);
	for (int i = 0; i < 2; ++i)
		want.push_back("getMore " + large_name + " " + one);
	ASSERT_GE(sizes.size(), want.size());
	for (size_t i = 0; i < want.size(); ++i)
		EXPECT_EQ(sizes[i], want[i]) << "command " << i;
}

// UpdateLookups returns, for each update event, its fullDocument as JSON ("null" when absent).
std::vector<std::string> UpdateLookups(const std::vector<mm::ChangeEvent> &events) {
	std::vector<std::string> out;
	for (const mm::ChangeEvent &e : events) {
		if (e.op == mm::OperationType::kUpdate)
			out.push_back(e.full_document ? mm::ToCanonicalJson(e.full_document.get()) : "null");
	}
	return out;
}

TEST(UpdateLookup, BothReadersReturnTheCurrentDocument) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("lookup");
	w.Insert(db, "a", R"({"_id": 0})");
	const mm::Timestamp start = source.OperationTime();
	w.Insert(db, "a", R"({"_id": 1, "n": 1})");
	w.Update(db, "a", R"({"_id": 1})", R"({"$inc": {"n": 1}})");
	w.Insert(db, "a", R"({"_id": 2, "n": 1})");
	w.Update(db, "a", R"({"_id": 2})", R"({"$inc": {"n": 1}})");
	w.Delete(db, "a", R"({"_id": 2})");
	const mm::Timestamp until = source.OperationTime();
	// Looked up when read: _id 1 as it is now; _id 2 is gone.
	const std::vector<std::string> expected = {R"({ "_id" : { "$numberInt" : "1" }, "n" : { "$numberInt" : "2" } })",
											   "null"};

	mm::StreamOptions so = Stream({{db, "a"}});
	so.update_lookup = true;
	mm::ChangeStreamReader stream(source, so, mm::Position::AtOperationTime(start));
	EXPECT_EQ(UpdateLookups(live::ReadUntil(Next(&stream), until)), expected);

	mm::OplogOptions oo;
	oo.namespaces = {{db, "a"}};
	oo.update_lookup = true;
	mm::OplogReader oplog(source, oo, mm::Position::AtOperationTime(start));
	EXPECT_EQ(UpdateLookups(live::ReadUntil(Next(&oplog), until)), expected);
}

// ApplyModel applies oplog events to a model of the collection (insert/replace set, update applies
// the $v:2 diff with ApplyDiff, delete erases).
void ApplyModel(const std::vector<mm::ChangeEvent> &events, std::map<std::string, live::Bson> *model) {
	for (const mm::ChangeEvent &e : events) {
		const std::string key = mm::ToCanonicalJson(e.document_key.get());
		if (e.op == mm::OperationType::kInsert || e.op == mm::OperationType::kReplace) {
			(*model)[key] = mm::CopyBson(e.full_document.get());
		} else if (e.op == mm::OperationType::kDelete) {
			model->erase(key);
		} else if (e.op == mm::OperationType::kUpdate) {
			bson_iter_t iter, diff;
			ASSERT_TRUE(bson_iter_init(&iter, e.raw.get()) && bson_iter_find_descendant(&iter, "o.diff", &diff))
				<< "expected a $v:2 update entry: " << mm::ToRelaxedJson(e.raw.get());
			live::Bson d = mm::BsonFromIter(&diff);
			ASSERT_TRUE(model->count(key)) << key;
			(*model)[key] = mm::ApplyDiff((*model)[key].get(), d.get());
		}
	}
}

TEST(Oplog, SameEventsAsTheChangeStreamAndDiffsReplayExactly) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("oplog");
	w.Insert(db, "a", R"({"_id": 0})");
	const mm::Timestamp start = source.OperationTime();
	w.Insert(db, "a", R"({"_id": 1, "doc": {"tags": ["a", "b", "c"], "n": 1, "sub": {"x": 1}},
		"arr": [1, 2, 3, 4, 5], "cnt": 0, "rm": 1})");
	const char *updates[] = {
		R"({"$set": {"doc.sub.x": 2, "doc.new": "v"}})",
		R"({"$unset": {"rm": ""}})",
		R"({"$inc": {"cnt": 5, "doc.n": 1}})",
		R"({"$push": {"doc.tags": "d"}})",
		R"({"$pull": {"arr": 3}})",
		R"({"$pop": {"arr": 1}})",
		R"({"$pop": {"arr": -1}})",
		R"({"$set": {"arr.1": 99}})",
		R"({"$push": {"objs": {"$each": [{"k": 1}, {"k": 2}]}}})",
		R"({"$set": {"objs.1.k": 20}})",
		R"({"$unset": {"doc.sub": ""}, "$set": {"doc.tags.0": "z"}})",
	};
	for (const char *u : updates)
		w.Update(db, "a", R"({"_id": 1})", u);
	w.Replace(db, "a", R"({"_id": 1})", R"({"_id": 1, "fresh": true, "list": [1]})");
	w.Update(db, "a", R"({"_id": 1})", R"({"$push": {"list": 2}})");
	w.Insert(db, "a", R"({"_id": 2, "a": 1})");
	w.Delete(db, "a", R"({"_id": 2})");
	w.Insert(db, "other", R"({"_id": 3})");
	// A pipeline update that shortens arrays: mongod's diff calculator writes {a: true, l: 2}.
	w.Insert(db, "a", R"({"_id": 4, "arr": [1, 2, 3, 4, 5, 6], "d": {"x": [1, 2, 3]}})");
	w.Update(db, "a", R"({"_id": 4})",
			 R"([{"$set": {"arr": {"$literal": [1, 2]}, "d": {"$literal": {"x": [1, 2]}}}}])");
	w.Transaction({{db, "a", R"({"_id": 10})"}, {db, "other", R"({"_id": 11})"}, {db, "a", R"({"_id": 12})"}});
	const mm::Timestamp until = source.OperationTime();

	mm::ChangeStreamReader stream(source, Stream({{db, "a"}}), mm::Position::AtOperationTime(start));
	std::vector<mm::ChangeEvent> from_stream = live::ReadUntil(Next(&stream), until);
	mm::OplogOptions oo;
	oo.namespaces = {{db, "a"}};
	mm::OplogReader oplog(source, oo, mm::Position::AtOperationTime(start));
	std::vector<mm::ChangeEvent> from_oplog = live::ReadUntil(Next(&oplog), until);
	EXPECT_EQ(Summaries(from_oplog), Summaries(from_stream));
	EXPECT_EQ(from_oplog.size(), 21u) << testing::PrintToString(Summaries(from_oplog));
	size_t truncations = 0;
	for (const mm::ChangeEvent &e : from_stream)
		truncations += e.truncated_arrays.size();
	EXPECT_EQ(truncations, 2u) << "the pipeline update should shorten arr and d.x";

	std::map<std::string, live::Bson> model;
	model[R"({ "_id" : { "$numberInt" : "0" } })"] = live::J(R"({"_id": 0})");
	ApplyModel(from_oplog, &model);
	std::vector<std::string> expected, actual;
	for (const auto &[key, doc] : model)
		expected.push_back(mm::ToCanonicalJson(doc.get()));
	for (const live::Bson &doc : w.All(db, "a"))
		actual.push_back(mm::ToCanonicalJson(doc.get()));
	std::sort(expected.begin(), expected.end());
	std::sort(actual.begin(), actual.end());
	EXPECT_EQ(expected, actual) << "ApplyDiff must rebuild exactly what the server stored";
}

TEST(Oplog, ResumesAfterStoredPositionAndAdvancesWhenQuiet) {
	REQUIRE_SOURCE();
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("oplogresume");
	mm::OplogOptions oo;
	oo.namespaces = {{db, "a"}};
	std::string stored = mm::OplogReader(source, oo, mm::Position::Now()).CurrentPosition().ToJson();
	for (int k = 0; k < 7; ++k)
		w.Insert(db, "a", R"({"_id": )" + std::to_string(k) + "}");
	w.Insert(db, "unmapped", R"({"_id": 1})");
	const mm::Timestamp until = source.OperationTime();
	std::vector<std::string> seen;
	mm::Position last;
	for (int round = 0; round < 100; ++round) {
		mm::OplogReader reader(source, oo, mm::Position::FromJson(stored));
		mm::Batch batch = reader.NextBatch(2, 2000);
		for (const mm::ChangeEvent &e : batch.events)
			seen.push_back(mm::ToCanonicalJson(e.document_key.get()));
		stored = batch.position.ToJson();
		last = batch.position;
		if (batch.caught_up && batch.reached >= until)
			break;
	}
	EXPECT_EQ(seen.size(), 7u) << testing::PrintToString(seen);
	EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 7u);
	EXPECT_EQ(last.kind, mm::Position::Kind::kOplogAfter);
	EXPECT_GE(last.time, until);
}

// ExpectHistoryLost runs open_and_read and expects a SourceError of kind kHistoryLost.
void ExpectHistoryLost(const std::function<void()> &open_and_read, const char *what) {
	try {
		open_and_read();
		ADD_FAILURE() << what << ": expected history lost";
	} catch (const mm::SourceError &e) {
		EXPECT_EQ(e.Kind(), mm::SourceErrorKind::kHistoryLost)
			<< what << ": " << e.Message() << " / " << e.Detail() << " code " << e.ServerCode();
		EXPECT_FALSE(e.Hint().empty());
	}
}

TEST(HistoryLost, OldPositionOnATinyOplog) {
	const std::string uri = live::Env("MONGO_SMALL_OPLOG_URI");
	if (uri.empty())
		GTEST_SKIP() << "MONGO_SMALL_OPLOG_URI is not set (peer only: mongo-peer --oplog-size 10)";
	mm::Source source(uri);
	live::Writer w(uri);
	const std::string db = live::UniqueDb("lost");
	mm::ChangeStreamReader reader(source, Stream({{db, "a"}}), mm::Position::Now());
	w.Insert(db, "a", R"({"_id": 0})");
	mm::Position old;
	std::vector<mm::ChangeEvent> first = live::ReadUntil(Next(&reader), source.OperationTime(), 20, nullptr, &old);
	ASSERT_EQ(first.size(), 1u);
	const mm::Timestamp old_time = first[0].cluster_time;
	for (int k = 0; k < 50; ++k)
		w.Insert(db, "other", R"({"_id": )" + std::to_string(k) + "}");
	ExpectHistoryLost(
		[&]() {
			mm::ChangeStreamReader late(source, Stream({{db, "a"}}), old);
			late.NextBatch(10, 500);
		},
		"change stream");
	mm::OplogOptions oo;
	oo.namespaces = {{db, "a"}};
	ExpectHistoryLost(
		[&]() {
			mm::OplogReader late(source, oo, mm::Position::OplogAfter(old_time));
			late.NextBatch(10, 500);
		},
		"oplog");
}

} // namespace
