// diff.hpp: MongoDB's $v:2 update diffs (oplog "u" entries since 5.0), read and applied (PG-free).
//
// The format (MongoDB src/mongo/db/update/document_diff_serialization.h, applied by
// document_diff_applier.cpp, turned into change events by change_stream_document_diff_parser.cpp):
// a document diff has sections
//   d: {field: false, ...}   delete field
//   u: {field: value, ...}   set field (in place if present, else appended)
//   i: {field: value, ...}   insert field (moved to the end if present)
//   s<field>: <diff>         apply a sub-diff to field; an array diff when it holds a: true
// and an array diff {a: true, l: <new length>, u<index>: value, s<index>: <diff>} resizes the array
// to l (padding with null), sets elements and applies sub-diffs by index. MongoDB 8's binary
// section "b" is not supported (Error 0A000).
#pragma once

#include <string>
#include <vector>

#include "mongo_river/mongo/change_event.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

// UpdateDescription is a change event's updateDescription: dotted paths of what changed.
struct UpdateDescription {
	Bson updated_fields; // {"a.b": value, "arr.3": value, ...}
	std::vector<std::string> removed_fields;
	std::vector<TruncatedArray> truncated_arrays;
	// exact_paths: splitting each path at its dots gives its keys (no field name in the diff holds a
	// dot; always so for $v:1 modifiers, whose paths are dotted paths by definition).
	bool exact_paths = true;
};

// ParseDiff turns a $v:2 diff (the oplog entry's o.diff) into the updateDescription a change stream
// reports for it, in the same order as mongod's change_stream_document_diff_parser: at each level
// u then i fields (updatedFields), d fields (removedFields), then sub-diffs depth first; for an
// array, l gives truncatedArrays {field, newSize} and u<i>/s<i> give "field.i" paths. A malformed
// diff raises Error 22000.
UpdateDescription ParseDiff(const bson_t *diff);

// ParseModifierUpdate turns a $v:1 (pre-5.0) modifier update {$set: {...}, $unset: {...}} into an
// updateDescription ($set paths updated, $unset paths removed).
UpdateDescription ParseModifierUpdate(const bson_t *update);

// ApplyDiff returns doc with diff applied exactly as mongod's document_diff_applier does, including
// its idempotent-replay rules: a sub-diff meeting a value of the wrong type (or an array element
// the pre-image lacks) writes null; an array shorter than its diff is padded with null.
Bson ApplyDiff(const bson_t *doc, const bson_t *diff);

} // namespace mongo_river::mongo
