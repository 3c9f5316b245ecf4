// copy.hpp: read a whole collection in _id order, resumable after a crash (PG-free).
//
// Resuming: the caller stores LastId() with each copied batch. A new CollectionScan given that
// {_id: last} continues after it. MongoDB sorts _id across BSON types by "type bracket" (MinKey,
// null, numbers, strings/symbols, objects, arrays, binData, ObjectId, bool, date, timestamp,
// regex, DBPointer, code, code with scope, MaxKey), but a comparison operator only matches values
// of its operand's bracket: {_id: {$gt: 5}} never matches a string. So the resume filter is
//   {$or: [{_id: {$gt: last}},                       -- the rest of last's bracket
//          {_id: {$gte: <least value of bracket>}}   -- each later bracket, whole
//          ...]}
// where the least values are: null (null), NaN and -Infinity (numbers: NaN compares false
// against everything but NaN, and sorts first), "" (strings), {} (objects), BinData(0, "")
// (binData), ObjectId("00..0"), false, Date(INT64_MIN), Timestamp(0, 0); the rare brackets with no
// usable least value (DBPointer, code, code with scope, MaxKey) are matched with $type. Arrays and
// regexes cannot be _ids. Each clause is an index range on _id, so a resumed scan starts at last
// instead of re-reading the collection. References: MongoDB's bsontypes.h canonicalizeBSONType and
// ComparisonMatchExpressionBase::matchesSingleElement (NaN and bracket rules). The scan reads with
// readConcern "majority", so nothing it copies can be rolled back by a failover.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mongo_river/mongo/change_event.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

class Source;

// BuildResumeFilter returns the find filter matching every _id that sorts after last_id (see the
// file comment); an empty filter when last_id is nullptr.
Bson BuildResumeFilter(const bson_value_t *last_id);

// IdBracket returns MongoDB's canonical sort bracket of a BSON type (lower sorts first).
int IdBracket(bson_type_t type);

class CollectionScan {
public:
	// CollectionScan prepares to read db.coll in _id order, after resume_after ({_id: value}) when
	// given; batch_size is the server's cursor batch size. Nothing is read until NextBatch.
	CollectionScan(Source &source, std::string db, std::string coll, const bson_t *resume_after = nullptr,
				   int32_t batch_size = 1000);

	CollectionScan(const CollectionScan &) = delete;
	CollectionScan &operator=(const CollectionScan &) = delete;

	// NextBatch returns up to max_docs next documents in _id order, fewer once they hold max_bytes
	// of BSON (at least one: large documents make small batches, so memory stays bounded). They are
	// valid until the next NextBatch call or the scan's end: the last one may be read in place from
	// the cursor's reply (a large document is not copied);
	// empty once the whole collection has been read (Done()). A cursor lost to a network error or a
	// server-side timeout (CursorNotFound) is reopened after LastId() transparently, up to 3 times in
	// a row.
	std::vector<Bson> NextBatch(size_t max_docs, size_t max_bytes = kMaxBatchBytes);

	// Done tells whether the scan has read the last document.
	bool Done() const { return done_; }
	// Restart drops what the cursor still holds (the rest of a reply read earlier): the next
	// NextBatch reads afresh after the last document returned.
	void Restart() { cursor_.reset(); }
	// RestartAfter is Restart with the scan moved back to after last_id ({_id: value}; nullptr: the
	// collection's start): documents returned after it are read again.
	void RestartAfter(const bson_t *last_id);
	// LastBorrowed tells whether the last document NextBatch returned is read in place from the
	// cursor's reply (valid only until the next NextBatch).
	bool LastBorrowed() const { return last_borrowed_; }
	// LastId returns {_id: value} of the last document returned (or resume_after), nullptr if none:
	// store it with the batch to resume after a crash.
	const bson_t *LastId() const { return last_id_.get(); }

private:
	// Open starts a find cursor after LastId().
	void Open();
	// Borrow returns a read-only bson_t over doc's bytes in the cursor's reply, without copying them;
	// it reads them until the cursor moves on (only the last document of a batch is left borrowed).
	Bson Borrow(const bson_t *doc);
	// Remember records doc's _id as LastId().
	void Remember(const bson_t *doc);
	// RememberLast records the _id of the last document of docs that has one as LastId().
	void RememberLast(const std::vector<Bson> &docs);
	// FitBatchSize sets the batch size of the cursor's next getMore (FitReplyCount) to what kMaxBatchBytes holds of
	// documents the size of the batch read so far (docs documents, bytes of BSON): at least 1, at
	// most the scan's batch size and at most the documents the scan has read (it at most doubles
	// from one getMore to the next).
	void FitBatchSize(size_t docs, size_t bytes);

	Source &source_;
	std::string db_;
	std::string coll_;
	int32_t batch_size_;
	Bson last_id_;
	mongo::Collection collection_;
	Cursor cursor_;
	int64_t cursor_batch_ = 0;         // the batch size the next getMore (or a reopened find) asks for
	size_t read_ = 0;                  // the documents the scan has read (all its cursors)
	uint8_t *borrowed_data_ = nullptr; // the borrowed document's bytes and length (see Borrow)
	size_t borrowed_len_ = 0;
	bool done_ = false;
	bool last_borrowed_ = false;
};

} // namespace mongo_river::mongo
