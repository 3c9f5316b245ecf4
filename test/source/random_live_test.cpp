// random_live_test.cpp: random updates (seeded; the seed is printed, SOURCE_TEST_SEED replays it)
// written to a live MongoDB, then read back from the oplog and the change stream: ApplyDiff must
// rebuild exactly the documents the server stored from the $v:2 diffs, and the oplog reader must
// describe every change as the change stream does.
#include <chrono>
#include <map>
#include <random>

#include "live.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/diff.hpp"
#include "mongo_river/mongo/oplog.hpp"
#include "mongo_river/mongo/source.hpp"

namespace mm = mongo_river::mongo;

namespace {

// RandomUpdates generates update documents (modifiers and pipelines) from a seed.
class RandomUpdates {
public:
	explicit RandomUpdates(uint32_t seed) : rng_(seed) {}

	// Next returns one update: a modifier document or a pipeline (a JSON array).
	std::string Next() {
		switch (Pick(12)) {
		case 0:
			return R"({"$set": {")" + Path() + R"(": )" + Value(2) + "}}";
		case 1:
			return R"({"$unset": {")" + Path() + R"(": ""}})";
		case 2:
			return R"({"$inc": {"n": )" + std::to_string(Pick(9) + 1) + "}}";
		case 3:
			return R"({"$push": {"arr": )" + Value(1) + "}}";
		case 4:
			return R"({"$push": {"arr": {"$each": [)" + Value(0) + ", " + Value(0) + R"(], "$slice": -4}}})";
		case 5:
			return R"({"$pop": {"arr": )" + std::string(Pick(2) ? "1" : "-1") + "}}";
		case 6:
			return R"({"$pull": {"arr": )" + std::to_string(Pick(4)) + "}}";
		case 7:
			return R"({"$addToSet": {"b.tags": )" + std::to_string(Pick(4)) + "}}";
		case 8:
			return Pick(2) ? R"({"$rename": {"a": "z"}})" : R"({"$rename": {"z": "a"}})";
		case 9:
			return R"([{"$set": {"arr": {"$literal": )" + Array(1) + "}}}])";
		case 10:
			return R"([{"$set": {"b": {"$literal": )" + Doc(2) + R"(}, "n": {"$add": [{"$ifNull": ["$n", 0]}, 1]}}}])";
		default:
			return R"({"$set": {"arr.)" + std::to_string(Pick(5)) + R"(": )" + Value(1) + ", \"b.c.d\": " + Value(0) +
				   "}}";
		}
	}

	// Doc returns a random embedded document nested at most depth levels.
	std::string Doc(int depth) {
		std::string out = "{";
		const char *keys[] = {"c", "d", "tags", "x"};
		int n = Pick(4);
		for (int k = 0; k < n; ++k)
			out += std::string(k ? ", " : "") + "\"" + keys[k] + "\": " + Value(depth - 1);
		return out + "}";
	}

	// Array returns a random array of values nested at most depth levels.
	std::string Array(int depth) {
		std::string out = "[";
		int n = Pick(5);
		for (int k = 0; k < n; ++k)
			out += std::string(k ? ", " : "") + Value(depth - 1);
		return out + "]";
	}

private:
	int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

	std::string Path() {
		const char *paths[] = {"a", "b.c", "b.x.y", "arr", "arr.1", "n", "b", "b.tags", "objs.0.k", "z"};
		return paths[Pick(10)];
	}

	std::string Value(int depth) {
		int kind = depth > 0 ? Pick(5) : Pick(3);
		switch (kind) {
		case 0:
			return std::to_string(Pick(100));
		case 1:
			return "\"s" + std::to_string(Pick(10)) + "\"";
		case 2:
			return Pick(2) ? "true" : "null";
		case 3:
			return Doc(depth);
		default:
			return Array(depth);
		}
	}

	std::mt19937 rng_;
};

TEST(Random, DiffsReplayExactlyAndReadersAgree) {
	REQUIRE_SOURCE();
	const std::string seed_env = live::Env("SOURCE_TEST_SEED");
	const uint32_t seed = seed_env.empty()
							  ? static_cast<uint32_t>(std::chrono::system_clock::now().time_since_epoch().count())
							  : static_cast<uint32_t>(std::stoul(seed_env));
	std::printf("random updates: SOURCE_TEST_SEED=%u\n", seed);
	SCOPED_TRACE("SOURCE_TEST_SEED=" + std::to_string(seed));
	mm::Source source(live::SourceUri());
	live::Writer w(live::SourceUri());
	const std::string db = live::UniqueDb("random");
	w.Insert(db, "a", R"({"_id": -1})");
	const mm::Timestamp start = source.OperationTime();
	RandomUpdates gen(seed);
	for (int id = 0; id < 4; ++id)
		w.Insert(db, "a",
				 R"({"_id": )" + std::to_string(id) + R"(, "a": 1, "b": )" + gen.Doc(2) + R"(, "arr": )" +
					 gen.Array(2) + R"(, "objs": [{"k": 1}, {"k": 2}], "n": 0})");
	int applied = 0, pipelines = 0;
	for (int k = 0; k < 200; ++k) {
		const std::string update = gen.Next();
		try {
			w.Update(db, "a", R"({"_id": )" + std::to_string(k % 4) + "}", update);
			++applied;
			pipelines += update[0] == '[';
		} catch (const std::exception &e) {
			// The server refused it (e.g. a path through a scalar): no change, nothing to replay.
		}
	}
	std::printf("random updates: %d of 200 accepted, %d of them pipelines\n", applied, pipelines);
	EXPECT_GT(applied, 100) << "too few random updates were accepted";
	EXPECT_GT(pipelines, 5) << "too few pipeline updates were accepted";
	const mm::Timestamp until = source.OperationTime();

	mm::OplogOptions oo;
	oo.namespaces = {{db, "a"}};
	mm::OplogReader oplog(source, oo, mm::Position::AtOperationTime(start));
	std::vector<mm::ChangeEvent> from_oplog =
		live::ReadUntil([&oplog]() { return oplog.NextBatch(50, 1000); }, until, 60);
	mm::StreamOptions so;
	so.namespaces = {{db, "a"}};
	mm::ChangeStreamReader stream(source, so, mm::Position::AtOperationTime(start));
	std::vector<mm::ChangeEvent> from_stream =
		live::ReadUntil([&stream]() { return stream.NextBatch(50, 1000); }, until, 60);
	ASSERT_EQ(from_oplog.size(), from_stream.size());
	for (size_t k = 0; k < from_oplog.size(); ++k)
		EXPECT_EQ(live::Summary(from_oplog[k]), live::Summary(from_stream[k]))
			<< "event " << k << ", oplog entry "
			<< (from_oplog[k].raw ? mm::ToRelaxedJson(from_oplog[k].raw.get()) : std::string("(not kept)"));

	std::map<std::string, live::Bson> model;
	for (const mm::ChangeEvent &e : from_oplog) {
		const std::string key = mm::ToCanonicalJson(e.document_key.get());
		if (e.op != mm::OperationType::kUpdate) {
			model[key] = mm::CopyBson(e.full_document.get());
			continue;
		}
		bson_iter_t iter, diff;
		ASSERT_TRUE(bson_iter_init(&iter, e.raw.get()) && bson_iter_find_descendant(&iter, "o.diff", &diff));
		live::Bson d = mm::BsonFromIter(&diff);
		model[key] = mm::ApplyDiff(model[key].get(), d.get());
	}
	for (const live::Bson &doc : w.All(db, "a")) {
		bson_iter_t id;
		ASSERT_TRUE(bson_iter_init_find(&id, doc.get(), "_id"));
		live::Bson key = mm::WrapValue("_id", bson_iter_value(&id));
		const std::string k = mm::ToCanonicalJson(key.get());
		if (k == R"({ "_id" : { "$numberInt" : "-1" } })")
			continue;
		ASSERT_TRUE(model.count(k)) << k;
		EXPECT_EQ(mm::ToCanonicalJson(model[k].get()), mm::ToCanonicalJson(doc.get()));
	}
}

} // namespace
