// fuzz_oplog.cpp: libFuzzer target for OplogAssembler::Feed, which reads each entry's fields as
// views into it (written by review 24 of 206c33b). The input is a program: each byte pair builds one
// oplog entry from parts (op kind, lsid as a document / array / string / int / corrupt / absent,
// txnNumber as int64 / int32 / string / absent, applyOps with partialTxn / prepare / non-documents,
// commit / abort commands, duplicate keys, no ts). Each entry lives in a heap buffer that is
// poisoned and freed right after Feed (as a cursor's reply is replaced): an event that kept a view
// into it is a use after free under ASan. Every event's documents are then read whole.
// FUZZ_OPLOG_PRINT=1 prints each event (to diff two builds over the same inputs).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/bson_util.hpp"
#include "mongo_river/mongo/oplog.hpp"

namespace mm = mongo_river::mongo;

namespace {

void AppendLsid(bson_t *b, int kind, int session) {
	bson_t sub;
	switch (kind % 6) {
	case 0:
		bson_append_document_begin(b, "lsid", -1, &sub);
		BSON_APPEND_INT32(&sub, "id", session);
		bson_append_document_end(b, &sub);
		break;
	case 1:
		bson_append_array_begin(b, "lsid", -1, &sub);
		BSON_APPEND_INT32(&sub, "0", session);
		bson_append_array_end(b, &sub);
		break;
	case 2:
		BSON_APPEND_UTF8(b, "lsid", "session");
		break;
	case 3:
		BSON_APPEND_INT32(b, "lsid", session);
		break;
	case 4: {
		// a document whose inner string claims more bytes than it has
		uint8_t bad[] = {14, 0, 0, 0, 2, 'i', 'd', 0, 99, 0, 0, 0, 'x', 0};
		bson_t view;
		if (bson_init_static(&view, bad, sizeof bad))
			bson_append_document(b, "lsid", -1, &view);
		break;
	}
	default:
		break; // none
	}
}

void AppendTxn(bson_t *b, int kind, int number) {
	switch (kind % 4) {
	case 0:
		BSON_APPEND_INT64(b, "txnNumber", number);
		break;
	case 1:
		BSON_APPEND_INT32(b, "txnNumber", number);
		break;
	case 2:
		BSON_APPEND_UTF8(b, "txnNumber", "1");
		break;
	default:
		break;
	}
}

void AppendInsert(bson_t *b, const char *key, int id) {
	bson_t op, o;
	bson_append_document_begin(b, key, -1, &op);
	BSON_APPEND_UTF8(&op, "op", "i");
	BSON_APPEND_UTF8(&op, "ns", id % 5 == 0 ? "other.c" : "db.c");
	bson_append_document_begin(&op, "o", -1, &o);
	BSON_APPEND_INT32(&o, "_id", id);
	bson_append_document_end(&op, &o);
	bson_append_document_end(b, &op);
}

// Build makes one entry from two program bytes.
mm::Bson Build(uint8_t a, uint8_t c, uint32_t seq) {
	mm::Bson b = mm::NewBson();
	const int shape = a % 8;
	const bool dup = c & 0x80;
	if (!(a & 0x80))
		bson_append_timestamp(b.get(), "ts", -1, 100, seq);
	AppendLsid(b.get(), c & 7, (c >> 3) & 1);
	AppendTxn(b.get(), (c >> 4) & 3, (a >> 3) & 1);
	bson_t o, arr;
	switch (shape) {
	case 0: // plain insert (a retryable write when it has lsid + txnNumber)
	case 1:
		BSON_APPEND_UTF8(b.get(), "op", "i");
		BSON_APPEND_UTF8(b.get(), "ns", "db.c");
		bson_append_document_begin(b.get(), "o", -1, &o);
		BSON_APPEND_INT32(&o, "_id", int(seq));
		bson_append_document_end(b.get(), &o);
		break;
	case 2: // update with a diff
		BSON_APPEND_UTF8(b.get(), "op", "u");
		BSON_APPEND_UTF8(b.get(), "ns", "db.c");
		bson_append_document_begin(b.get(), "o", -1, &o);
		BSON_APPEND_INT32(&o, "$v", 2);
		{
			bson_t diff, u;
			bson_append_document_begin(&o, "diff", -1, &diff);
			bson_append_document_begin(&diff, "u", -1, &u);
			BSON_APPEND_INT32(&u, "n", int(seq));
			bson_append_document_end(&diff, &u);
			bson_append_document_end(&o, &diff);
		}
		bson_append_document_end(b.get(), &o);
		bson_append_document_begin(b.get(), "o2", -1, &o);
		BSON_APPEND_INT32(&o, "_id", int(seq % 3));
		bson_append_document_end(b.get(), &o);
		break;
	case 3: // applyOps, partial / prepared / last
	case 4:
		BSON_APPEND_UTF8(b.get(), "op", "c");
		BSON_APPEND_UTF8(b.get(), "ns", "admin.$cmd");
		bson_append_document_begin(b.get(), "o", -1, &o);
		bson_append_array_begin(&o, "applyOps", -1, &arr);
		AppendInsert(&arr, "0", int(seq));
		if (c & 0x40)
			BSON_APPEND_UTF8(&arr, "1", "not an op");
		AppendInsert(&arr, "2", int(seq) + 1000);
		bson_append_array_end(&o, &arr);
		if (a & 0x40)
			BSON_APPEND_BOOL(&o, "partialTxn", true);
		else if (a & 0x20)
			BSON_APPEND_BOOL(&o, "prepare", true);
		bson_append_document_end(b.get(), &o);
		break;
	case 5:
		BSON_APPEND_UTF8(b.get(), "op", "c");
		BSON_APPEND_UTF8(b.get(), "ns", "admin.$cmd");
		bson_append_document_begin(b.get(), "o", -1, &o);
		BSON_APPEND_INT32(&o, "commitTransaction", 1);
		bson_append_document_end(b.get(), &o);
		break;
	case 6:
		BSON_APPEND_UTF8(b.get(), "op", "c");
		BSON_APPEND_UTF8(b.get(), "ns", "admin.$cmd");
		bson_append_document_begin(b.get(), "o", -1, &o);
		BSON_APPEND_INT32(&o, "abortTransaction", 1);
		bson_append_document_end(b.get(), &o);
		break;
	default: // malformed: o not a document
		BSON_APPEND_UTF8(b.get(), "op", "i");
		BSON_APPEND_UTF8(b.get(), "ns", "db.c");
		BSON_APPEND_UTF8(b.get(), "o", "x");
		break;
	}
	if (dup) { // every key again, other values
		BSON_APPEND_UTF8(b.get(), "op", "d");
		BSON_APPEND_UTF8(b.get(), "ns", "db.c");
		BSON_APPEND_INT32(b.get(), "o", 1);
		BSON_APPEND_UTF8(b.get(), "lsid", "x");
		BSON_APPEND_UTF8(b.get(), "txnNumber", "x");
		BSON_APPEND_INT32(b.get(), "ts", 1);
	}
	return b;
}

void Touch(const bson_t *doc) {
	if (doc)
		mm::ToRelaxedJson(doc);
}

// Print writes an event's fields (FUZZ_OPLOG_PRINT set: the same inputs run through two builds, old and
// new oplog.cpp, must print the same).
void Print(const mm::ChangeEvent &e) {
	auto json = [](const mm::Bson &b) { return b ? mm::ToCanonicalJson(b.get()) : std::string("-"); };
	printf("  ev op=%d ns=%s.%s t=%u,%u lsid=%s txn=%lld key=%s doc=%s raw=%s upd=%s unreadable=%s\n", int(e.op),
		   e.db.c_str(), e.coll.c_str(), e.cluster_time.t, e.cluster_time.i, json(e.lsid).c_str(),
		   e.txn_number ? (long long)*e.txn_number : -1LL, json(e.document_key).c_str(), json(e.full_document).c_str(),
		   json(e.raw).c_str(), json(e.updated_fields).c_str(), e.unreadable.c_str());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (getenv("FUZZ_OPLOG_PRINT"))
		printf("input %zu bytes\n", size);
	mm::OplogAssembler assembler({{"db", "c"}});
	std::vector<mm::ChangeEvent> kept;
	for (size_t i = 0; i + 1 < size && i < 512; i += 2) {
		mm::Bson entry = Build(data[i], data[i + 1], uint32_t(i / 2 + 1));
		// The entry in a buffer of its own, freed (after poisoning) once fed.
		uint8_t *buffer = static_cast<uint8_t *>(malloc(entry->len));
		memcpy(buffer, bson_get_data(entry.get()), entry->len);
		bson_t view;
		if (!bson_init_static(&view, buffer, entry->len)) {
			free(buffer);
			continue;
		}
		try {
			std::vector<mm::ChangeEvent> events = assembler.Feed(&view);
			if (getenv("FUZZ_OPLOG_PRINT")) {
				printf(" entry %zu settled=%d\n", i / 2, int(assembler.Settled()));
				for (auto &event : events)
					Print(event);
			}
			for (auto &event : events)
				kept.push_back(std::move(event));
		} catch (const mongo_river::Error &) {
		}
		memset(buffer, 0xA5, entry->len);
		free(buffer);
		for (const auto &event : kept) {
			Touch(event.document_key.get());
			Touch(event.full_document.get());
			Touch(event.raw.get());
			Touch(event.lsid.get());
			Touch(event.updated_fields.get());
		}
		if (kept.size() > 64)
			kept.clear();
	}
	return 0;
}
