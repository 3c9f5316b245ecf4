// fuzz_source.cpp: libFuzzer target for the source stage's parsers of untrusted input: $v:2 diffs
// (ApplyDiff, ParseDiff), oplog entries (ConvertOplogEntry), change events (ParseChangeEvent),
// resume tokens and stored positions. The input is Extended JSON {"d": <document>, "f": <diff>}
// (seeds in fuzz_corpus/) or raw BSON of the same shape. Anything may be rejected with a
// mongo_river::Error; nothing may crash, leak or produce invalid BSON.
#include <cstddef>
#include <cstdint>
#include <string>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/change_stream.hpp"
#include "mongo_river/mongo/diff.hpp"
#include "mongo_river/mongo/oplog.hpp"

namespace mm = mongo_river::mongo;

namespace {

// Parse returns the input as a document: JSON text first, raw BSON otherwise (nullptr if neither).
mm::Bson Parse(const uint8_t *data, size_t size) {
	bson_error_t error;
	mm::Bson doc(bson_new_from_json(data, static_cast<ssize_t>(size), &error));
	if (!doc)
		doc.reset(bson_new_from_data(data, size));
	if (doc && !bson_validate(doc.get(), BSON_VALIDATE_NONE, nullptr))
		doc.reset();
	return doc;
}

// Field returns the sub-document key of doc (an empty document when absent or not a document).
mm::Bson Field(const bson_t *doc, const char *key) {
	bson_iter_t iter;
	mm::Bson out;
	if (bson_iter_init_find(&iter, doc, key))
		out = mm::BsonFromIter(&iter);
	return out ? std::move(out) : mm::NewBson();
}

// Exercise runs one parser, accepting a mongo_river::Error as a clean rejection.
template <typename F> void Exercise(F f) {
	try {
		f();
	} catch (const mongo_river::Error &) {
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	Exercise([&] { mm::Position::FromJson(std::string(reinterpret_cast<const char *>(data), size)); });
	mm::Bson input = Parse(data, size);
	if (!input)
		return 0;
	mm::Bson doc = Field(input.get(), "d");
	mm::Bson diff = Field(input.get(), "f");
	Exercise([&] {
		mm::Bson out = mm::ApplyDiff(doc.get(), diff.get());
		if (!bson_validate(out.get(), BSON_VALIDATE_NONE, nullptr))
			__builtin_trap();
	});
	Exercise([&] { mm::ParseDiff(diff.get()); });
	Exercise([&] { mm::ConvertOplogEntry(input.get(), {{"db", "c"}, {"all", ""}}); });
	Exercise([&] { mm::ConvertOplogEntry(doc.get(), {{"db", "c"}}); });
	Exercise([&] { mm::ParseChangeEvent(input.get()); });
	mm::Timestamp ts;
	mm::DecodeResumeTokenTime(doc.get(), &ts);
	return 0;
}
