// update_plan.hpp: which columns an update event changes, from its update description alone (PG-free).
//
// An update event (a change stream's updateDescription, or an oplog entry's $v:2 diff or $v:1
// modifiers) names the paths it set, removed and truncated, without the rest of the document.
// PlanUpdate turns these into the new values of the root row's columns when the mapping allows it,
// so that the row can be updated in place without reading the document back (updateLookup, or a
// find by _id). When it does not, the plan says why and the caller looks the document up:
//   - the mapping has a document column (it holds the whole document);
//   - a path falls on, under or above an array mapping (child rows);
//   - a path falls strictly under a column's path (the column's new value needs the rest of the old one);
//   - a truncated array overlaps a column's path;
//   - a path touches _id, is empty, or overlaps another path of the same event;
//   - a path cannot be split into keys for sure: a change stream reports "a.b" for both a field
//     "a.b" and a field b inside a, so a mapping with a key containing a dot never plans from a
//     change stream's paths (libmongoc 1.23 cannot ask for disambiguatedPaths);
//   - a new value cannot be converted (the lookup path rejects the whole document, with the reason).
// "a.0" is either a field "0" or element 0: both are the key "0" of a BSON document or array, and
// FindPath reads both alike, so the plan is the same either way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <bson/bson.h>

#include "mongo_river/convert/value.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace mongo_river::convert {

// FieldChange is one path an update set (set: value is its new value, a view into the update's
// buffer) or removed (set false).
struct FieldChange {
	mapping::Path path;
	bool set = false;
	bson_value_t value{};
};

// ArrayTruncation is an array an update truncated to new_size elements.
struct ArrayTruncation {
	mapping::Path path;
	int64_t new_size = 0;
};

// UpdateChanges is what an update event says it changed. exact_paths tells that each path's keys are
// known exactly (an oplog diff without dotted field names); otherwise they were split at dots.
struct UpdateChanges {
	std::vector<FieldChange> fields;
	std::vector<ArrayTruncation> truncations;
	bool exact_paths = false;
	// unsure, when not empty, says why the changes cannot be read as paths at all (the plan looks up).
	std::string unsure;
};

// UpdatePlan is PlanUpdate's answer: lookup empty and columns the root row's changed columns (index
// in the row, new value; none when the update changed no mapped field), or lookup saying why the
// document must be read whole.
struct UpdatePlan {
	std::string lookup;
	std::vector<std::pair<std::size_t, Value>> columns;
};

// ReadUpdateChanges builds UpdateChanges from an update event's dotted paths: updated (a document
// {"a.b": value, ...}; the values point into it), removed and truncated (field, new size). An empty
// key ("a..b", a leading or trailing dot) makes it unsure.
UpdateChanges ReadUpdateChanges(const bson_t *updated, const std::vector<std::string> &removed,
								const std::vector<std::pair<std::string, int64_t>> &truncated, bool exact_paths);

} // namespace mongo_river::convert
