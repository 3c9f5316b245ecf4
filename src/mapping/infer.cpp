// infer.cpp: infer a mapping from sampled documents (rules in infer.hpp).
#include "mongo_river/mapping/infer.hpp"

#include <map>
#include <memory>
#include <set>

#pragma GCC diagnostic ignored "-Wignored-attributes"

#include "mongo_river/mapping/names.hpp"

namespace mongo_river::mapping {

namespace {

enum Kind : unsigned {
	kString = 1u << 0,
	kObjectId = 1u << 1,
	kInt32 = 1u << 2,
	kInt64 = 1u << 3,
	kDouble = 1u << 4,
	kDecimal = 1u << 5,
	kBool = 1u << 6,
	kDate = 1u << 7,
	kUuid = 1u << 8,
	kBinary = 1u << 9,
	kDocument = 1u << 10,
	kArray = 1u << 11,
	kOther = 1u << 12,
};

constexpr unsigned kNumbers = kInt32 | kInt64 | kDouble | kDecimal;
constexpr unsigned kScalars = kString | kObjectId | kNumbers | kBool | kDate | kUuid | kBinary | kOther;

// Stats accumulates what the sample holds at one path: the kinds seen, the keys of documents seen
// there (first-seen order), and the elements of arrays seen there.
struct Stats {
	unsigned kinds = 0;
	bool dynamic = false;
	std::vector<std::pair<std::string, std::unique_ptr<Stats>>> children;
	std::map<std::string, std::size_t> index;
	std::unique_ptr<Stats> elements;
};

// KindOf classifies a BSON value; null and undefined give 0.
unsigned KindOf(const bson_value_t &value) {
	switch (value.value_type) {
	case BSON_TYPE_UTF8:
		return kString;
	case BSON_TYPE_OID:
		return kObjectId;
	case BSON_TYPE_INT32:
		return kInt32;
	case BSON_TYPE_INT64:
		return kInt64;
	case BSON_TYPE_DOUBLE:
		return kDouble;
	case BSON_TYPE_DECIMAL128:
		return kDecimal;
	case BSON_TYPE_BOOL:
		return kBool;
	case BSON_TYPE_DATE_TIME:
		return kDate;
	case BSON_TYPE_BINARY:
		return (value.value.v_binary.data_len == 16 && (value.value.v_binary.subtype == BSON_SUBTYPE_UUID ||
														value.value.v_binary.subtype == BSON_SUBTYPE_UUID_DEPRECATED))
				   ? kUuid
				   : kBinary;
	case BSON_TYPE_DOCUMENT:
		return kDocument;
	case BSON_TYPE_ARRAY:
		return kArray;
	case BSON_TYPE_NULL:
	case BSON_TYPE_UNDEFINED:
	case BSON_TYPE_EOD:
		return 0;
	default:
		return kOther;
	}
}

// LooksLikeDynamicKey tells whether a key is data rather than a field name: an ObjectId, a number,
// a UUID or a date.
bool LooksLikeDynamicKey(const std::string &key) {
	auto all_of = [&key](const char *allowed) {
		return !key.empty() && key.find_first_not_of(allowed) == std::string::npos;
	};
	if (all_of("0123456789"))
		return true;
	if (key.size() == 24 && all_of("0123456789abcdefABCDEF"))
		return true;
	if (key.size() == 36 && all_of("0123456789abcdefABCDEF-"))
		return true;
	return key.size() >= 8 && key[4] == '-' && all_of("0123456789-:TZ.");
}

// kMaxRootKeys bounds the distinct top-level fields tracked (the root is never "dynamic").
constexpr std::size_t kMaxRootKeys = 10000;

// Observe adds one value to stats, walking documents and arrays down to depth_left levels; a
// document at this level may hold own_limit distinct keys (key_limit below) before it counts as
// dynamic.
void Observe(Stats &stats, const bson_value_t &value, int depth_left, std::size_t own_limit, std::size_t key_limit) {
	stats.kinds |= KindOf(value);
	if ((value.value_type != BSON_TYPE_DOCUMENT && value.value_type != BSON_TYPE_ARRAY) || depth_left <= 0)
		return;
	bson_iter_t iter;
	if (!bson_iter_init_from_data(&iter, value.value.v_doc.data, value.value.v_doc.data_len))
		return;
	while (bson_iter_next(&iter)) {
		const bson_value_t *child = bson_iter_value(&iter);
		if (value.value_type == BSON_TYPE_ARRAY) {
			if (!stats.elements)
				stats.elements = std::make_unique<Stats>();
			Observe(*stats.elements, *child, depth_left, key_limit, key_limit);
			continue;
		}
		if (stats.dynamic)
			continue;
		std::string key = bson_iter_key(&iter);
		auto found = stats.index.find(key);
		if (found == stats.index.end()) {
			if (stats.children.size() >= own_limit) {
				stats.dynamic = true;
				continue;
			}
			found = stats.index.emplace(key, stats.children.size()).first;
			stats.children.emplace_back(key, std::make_unique<Stats>());
		}
		Observe(*stats.children[found->second].second, *child, depth_left - 1, key_limit, key_limit);
	}
}

// IsDynamic tells whether a document's keys look like data (see infer.hpp).
bool IsDynamic(const Stats &stats) {
	if (stats.dynamic)
		return true;
	if (stats.children.empty())
		return false;
	for (const auto &child : stats.children)
		if (!LooksLikeDynamicKey(child.first))
			return false;
	return true;
}

// WidenType returns the narrowest type holding every scalar kind seen (kinds non-zero, scalars only).
std::string WidenType(unsigned kinds) {
	if ((kinds & ~(kString | kObjectId)) == 0)
		return "text";
	if ((kinds & ~kNumbers) == 0) {
		if (kinds & kDecimal)
			return "numeric";
		if (kinds & kDouble)
			return "double precision";
		return (kinds & kInt64) ? "bigint" : "integer";
	}
	if (kinds == kBool)
		return "boolean";
	if (kinds == kDate)
		return "timestamptz";
	if (kinds == kUuid)
		return "uuid";
	if ((kinds & ~(kUuid | kBinary)) == 0)
		return "bytea";
	if ((kinds & kString) && (kinds & kOther) == 0)
		return "text";
	return "jsonb";
}

// Builder emits columns and child tables for one table of the inferred mapping.
class Builder {
public:
	Builder(const InferOptions &options, std::set<std::string> *tables) : options_(options), tables_(tables) {}

	// Emit adds columns (and child tables when allowed) for the fields of a document's stats.
	void Emit(const Stats &stats, const Path &prefix, int depth, bool child_tables, std::set<std::string> &taken,
			  std::vector<Column> &columns, std::vector<ArrayMapping> &arrays) {
		for (const auto &[key, child] : stats.children) {
			if (key.empty() || key[0] == '$' || !bson_utf8_validate(key.data(), key.size(), false) ||
				(prefix.empty() && depth == 1 && child_tables && key == "_id"))
				continue;
			if (columns.size() >= options_.max_columns)
				return;
			Path path = prefix;
			path.push_back(key);
			unsigned kinds = child->kinds;
			if (kinds == kDocument && depth < options_.max_depth && !IsDynamic(*child) && !child->children.empty()) {
				Emit(*child, path, depth + 1, child_tables, taken, columns, arrays);
				continue;
			}
			if (kinds == kArray && child_tables && child->elements && child->elements->kinds == kDocument &&
				!IsDynamic(*child->elements) && !child->elements->children.empty()) {
				arrays.push_back(ChildTable(*child->elements, path, arrays));
				continue;
			}
			std::string name =
				UniqueName(ColumnNameForPath(path), [&taken](const std::string &n) { return taken.count(n) > 0; });
			taken.insert(name);
			columns.push_back({name, path, TypeOf(*child), Format::kDefault});
		}
	}

private:
	// TypeOf picks a column type for a non-flattened field.
	static std::string TypeOf(const Stats &stats) {
		unsigned kinds = stats.kinds;
		if (kinds == 0)
			return "text";
		if (kinds == kArray) {
			unsigned elements = stats.elements ? stats.elements->kinds : 0;
			if (elements == 0 || (elements & ~kScalars) != 0)
				return "jsonb";
			std::string element = WidenType(elements);
			return element == "jsonb" ? "jsonb" : element + "[]";
		}
		if ((kinds & ~kScalars) != 0)
			return "jsonb";
		return WidenType(kinds);
	}

	// ChildTable builds the array mapping of an array of documents.
	ArrayMapping ChildTable(const Stats &elements, const Path &path, const std::vector<ArrayMapping> &siblings) {
		ArrayMapping array;
		std::string field = ColumnNameForPath(path);
		array.name = UniqueName(field, [&siblings](const std::string &n) {
			for (const ArrayMapping &a : siblings)
				if (a.name == n)
					return true;
			return false;
		});
		array.path = path;
		array.table = UniqueName(DefaultIdentifier(options_.table + "_" + field),
								 [this](const std::string &n) { return tables_->count(n) > 0; });
		tables_->insert(array.table);
		array.fk = DefaultIdentifier(options_.table + "_id");
		array.position = array.fk == "pos" ? "position" : "pos";
		std::set<std::string> taken = {array.fk, array.position};
		std::vector<ArrayMapping> nested;
		Emit(elements, {}, 1, false, taken, array.columns, nested);
		return array;
	}

	const InferOptions &options_;
	std::set<std::string> *tables_;
};

// PkColumn picks the pk column for the sampled `_id` kinds.
Column PkColumn(unsigned kinds) {
	Column pk{"id", {"_id"}, "text", Format::kDefault};
	if (kinds == 0 || kinds == kString || kinds == kObjectId)
		return pk;
	if ((kinds & ~(kInt32 | kInt64)) == 0)
		pk.type = "bigint";
	else if (kinds == kUuid)
		pk.type = "uuid";
	else if (kinds == kDate)
		pk.type = "timestamptz";
	else if (kinds == kDecimal)
		pk.type = "numeric";
	else if (kinds == kDouble)
		pk.type = "double precision";
	else
		pk.format = Format::kExtendedJson;
	return pk;
}

} // namespace

Mapping InferMapping(const bson_t *const *documents, std::size_t count, const InferOptions &options) {
	Stats root;
	int depth = options.max_depth < 1 ? 1 : options.max_depth;
	for (std::size_t i = 0; i < count; ++i) {
		const bson_t *document = documents[i];
		bson_value_t value;
		value.value_type = BSON_TYPE_DOCUMENT;
		value.value.v_doc.data = const_cast<std::uint8_t *>(bson_get_data(document));
		value.value.v_doc.data_len = document->len;
		Observe(root, value, depth + 1, kMaxRootKeys, options.dynamic_key_threshold);
	}
	Mapping mapping;
	mapping.pk = "id";
	auto id = root.index.find("_id");
	mapping.columns.push_back(PkColumn(id == root.index.end() ? 0 : root.children[id->second].second->kinds));
	mapping.document = "document";
	std::set<std::string> taken = {"id", "document"};
	std::set<std::string> tables = {DefaultIdentifier(options.table)};
	InferOptions effective = options;
	effective.max_depth = depth;
	Builder builder(effective, &tables);
	builder.Emit(root, {}, 1, true, taken, mapping.columns, mapping.arrays);
	ValidateMapping(mapping);
	return mapping;
}

Mapping InferMapping(const std::vector<mongo::Bson> &documents, const InferOptions &options) {
	std::vector<const bson_t *> pointers;
	for (const mongo::Bson &document : documents)
		pointers.push_back(document.get());
	return InferMapping(pointers.data(), pointers.size(), options);
}

} // namespace mongo_river::mapping
