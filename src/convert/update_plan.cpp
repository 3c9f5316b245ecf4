// update_plan.cpp: the columns an update changes, read from its update description (see update_plan.hpp).
#include "mongo_river/convert/update_plan.hpp"

#include "mongo_river/convert/convert.hpp"
#include "mongo_river/convert/row.hpp"

namespace mongo_river::convert {

namespace {

// IsPrefix tells whether path a is a prefix of path b (equal paths included).
bool IsPrefix(const mapping::Path &a, const mapping::Path &b) {
	if (a.size() > b.size())
		return false;
	for (std::size_t i = 0; i < a.size(); ++i)
		if (a[i] != b[i])
			return false;
	return true;
}

// Overlap tells whether one path is a prefix of the other: a change of one may change the other.
bool Overlap(const mapping::Path &a, const mapping::Path &b) {
	return IsPrefix(a, b) || IsPrefix(b, a);
}

// HasDottedKey tells whether a key of path contains a dot.
bool HasDottedKey(const mapping::Path &path) {
	for (const std::string &key : path)
		if (key.find('.') != std::string::npos)
			return true;
	return false;
}

// SplitDotted splits a dotted path into keys; false when a key would be empty.
bool SplitDotted(const std::string &dotted, mapping::Path *out) {
	out->clear();
	std::string::size_type start = 0;
	while (true) {
		std::string::size_type dot = dotted.find('.', start);
		std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
		if (key.empty())
			return false;
		out->push_back(std::move(key));
		if (dot == std::string::npos)
			return true;
		start = dot + 1;
	}
}

// ValueBelow finds the value at rest inside value (a document or an array); nullptr when missing.
const bson_value_t *ValueBelow(const bson_value_t *value, const mapping::Path &rest, bson_iter_t *iter) {
	if (rest.empty())
		return value;
	if (value->value_type != BSON_TYPE_DOCUMENT && value->value_type != BSON_TYPE_ARRAY)
		return nullptr;
	bson_t container;
	if (!bson_init_static(&container, value->value.v_doc.data, value->value.v_doc.data_len) ||
		!FindPath(container, rest, iter))
		return nullptr;
	return bson_iter_value(iter);
}

} // namespace

UpdateChanges ReadUpdateChanges(const bson_t *updated, const std::vector<std::string> &removed,
								const std::vector<std::pair<std::string, int64_t>> &truncated, bool exact_paths) {
	UpdateChanges changes;
	changes.exact_paths = exact_paths;
	bson_iter_t iter;
	if (updated && bson_iter_init(&iter, updated)) {
		while (bson_iter_next(&iter)) {
			FieldChange change;
			if (!SplitDotted(bson_iter_key(&iter), &change.path)) {
				changes.unsure = std::string("the updated path \"") + bson_iter_key(&iter) + "\" has an empty key";
				return changes;
			}
			change.set = true;
			change.value = *bson_iter_value(&iter); // the iterator's value changes with the next field
			changes.fields.push_back(std::move(change));
		}
	}
	for (const std::string &path : removed) {
		FieldChange change;
		if (!SplitDotted(path, &change.path)) {
			changes.unsure = "the removed path \"" + path + "\" has an empty key";
			return changes;
		}
		changes.fields.push_back(std::move(change));
	}
	for (const auto &[path, size] : truncated) {
		ArrayTruncation truncation;
		if (!SplitDotted(path, &truncation.path)) {
			changes.unsure = "the truncated path \"" + path + "\" has an empty key";
			return changes;
		}
		truncation.new_size = size;
		changes.truncations.push_back(std::move(truncation));
	}
	return changes;
}

UpdatePlan DocumentConverter::PlanUpdate(const UpdateChanges &changes) const {
	UpdatePlan plan;
	if (!changes.unsure.empty()) {
		plan.lookup = changes.unsure;
		return plan;
	}
	if (!mapping_.document.empty()) {
		plan.lookup = "the document column \"" + mapping_.document + "\" holds the whole document";
		return plan;
	}
	if (!changes.exact_paths) {
		for (const CompiledColumn &compiled : columns_)
			if (HasDottedKey(compiled.column->path)) {
				plan.lookup = "column \"" + compiled.column->name +
							  "\" maps a key with a dot, which an update's dotted paths cannot tell apart";
				return plan;
			}
		for (const CompiledArray &array : arrays_)
			if (HasDottedKey(array.array->path)) {
				plan.lookup = "array \"" + array.array->name +
							  "\" maps a key with a dot, which an update's dotted paths cannot tell apart";
				return plan;
			}
	}
	for (std::size_t i = 0; i < changes.fields.size(); ++i) {
		const mapping::Path &path = changes.fields[i].path;
		if (path.empty() || path[0] == "_id") {
			plan.lookup = "the update changes _id";
			return plan;
		}
		for (std::size_t j = i + 1; j < changes.fields.size(); ++j)
			if (Overlap(path, changes.fields[j].path)) {
				plan.lookup = "the update's paths \"" + mapping::PathText(path) + "\" and \"" +
							  mapping::PathText(changes.fields[j].path) + "\" overlap";
				return plan;
			}
		for (const CompiledArray &array : arrays_)
			if (Overlap(path, array.array->path)) {
				plan.lookup = "the path \"" + mapping::PathText(path) + "\" changes the rows of array \"" +
							  array.array->name + "\"";
				return plan;
			}
	}
	for (const ArrayTruncation &truncation : changes.truncations) {
		for (const CompiledArray &array : arrays_)
			if (Overlap(truncation.path, array.array->path)) {
				plan.lookup = "the truncated array \"" + mapping::PathText(truncation.path) +
							  "\" changes the rows of array \"" + array.array->name + "\"";
				return plan;
			}
		for (const CompiledColumn &compiled : columns_)
			if (Overlap(truncation.path, compiled.column->path)) {
				plan.lookup = "the truncated array \"" + mapping::PathText(truncation.path) + "\" changes column \"" +
							  compiled.column->name + "\"";
				return plan;
			}
	}
	for (std::size_t c = 0; c < columns_.size(); ++c) {
		const CompiledColumn &compiled = columns_[c];
		const mapping::Path &column_path = compiled.column->path;
		for (const FieldChange &change : changes.fields) {
			if (IsPrefix(column_path, change.path) && column_path.size() < change.path.size()) {
				plan.lookup = "the path \"" + mapping::PathText(change.path) + "\" changes part of column \"" +
							  compiled.column->name + "\"";
				return plan;
			}
			if (!IsPrefix(change.path, column_path))
				continue;
			if (c == pk_index_) {
				plan.lookup = "the update changes the key column";
				return plan;
			}
			bson_iter_t iter;
			const bson_value_t *value = nullptr;
			if (change.set) {
				mapping::Path rest(column_path.begin() + static_cast<std::ptrdiff_t>(change.path.size()),
								   column_path.end());
				value = ValueBelow(&change.value, rest, &iter);
			}
			try {
				plan.columns.emplace_back(c,
										  ConvertMappedValue(*compiled.column, compiled.target, value, compiled.path));
			} catch (const ConversionError &error) {
				plan.lookup = "column \"" + compiled.column->name + "\": " + error.Message();
				plan.columns.clear();
				return plan;
			}
			break; // the event's paths do not overlap: no other one reaches this column
		}
	}
	return plan;
}

} // namespace mongo_river::convert
