// diff.cpp: read and apply MongoDB's $v:2 update diffs (see diff.hpp for the format and sources).
#include "mongo_river/mongo/diff.hpp"

#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "mongo_river/mongo/errors.hpp"

namespace mongo_river::mongo {

namespace {

// Limits that no diff mongod writes can exceed (a BSON document is at most 16 MB, an array element
// takes at least 3 bytes, documents nest at most 200 deep); they keep hostile input from exhausting
// memory or the stack.
constexpr size_t kMaxArraySize = 16 * 1024 * 1024 / 3;
constexpr uint32_t kMaxDocumentBytes = 16 * 1024 * 1024;
constexpr int kMaxDepth = 200;

// Malformed returns the error for a diff that does not follow MongoDB's format.
SourceError Malformed(const std::string &why) {
	return SourceError(SourceErrorKind::kMalformed, 0, sourcestate::kDataException, "malformed update diff", why);
}

// DepthGuard counts the nesting of sub-diffs being read, refusing more than kMaxDepth levels.
class DepthGuard {
public:
	DepthGuard() {
		if (++depth_ > kMaxDepth) {
			--depth_;
			throw Malformed("diff nested more than " + std::to_string(kMaxDepth) + " levels deep");
		}
	}
	DepthGuard(const DepthGuard &) = delete;
	DepthGuard &operator=(const DepthGuard &) = delete;
	~DepthGuard() { --depth_; }

private:
	static thread_local int depth_;
};

thread_local int DepthGuard::depth_ = 0;

// Field is a named value inside a diff section; iter points at the value and stays valid while the
// diff's buffer lives.
struct Field {
	std::string name;
	bson_iter_t iter;
};

// DocDiff is a parsed document diff: its sections in diff order.
struct DocDiff {
	std::vector<std::string> deletes;
	std::vector<Field> updates;
	std::vector<Field> inserts;
	std::vector<Field> subdiffs;
};

// ArrayMod is one modification of an array diff: an element update, or a sub-diff.
struct ArrayMod {
	bool is_update = false;
	bson_iter_t iter;
};

// ArrayDiff is a parsed array diff: optional new length and modifications by ascending index.
struct ArrayDiff {
	std::optional<size_t> new_size;
	std::map<size_t, ArrayMod> mods;
};

// Document returns the sub-document the iterator points at (a view into its buffer).
bool Document(const bson_iter_t *iter, bson_t *out) {
	uint32_t len = 0;
	const uint8_t *data = nullptr;
	if (BSON_ITER_HOLDS_DOCUMENT(iter))
		bson_iter_document(iter, &len, &data);
	else if (BSON_ITER_HOLDS_ARRAY(iter))
		bson_iter_array(iter, &len, &data);
	else
		return false;
	return bson_init_static(out, data, len);
}

// IsArrayDiff tells whether the sub-diff the iterator points at is an array diff ({a: true, ...}).
bool IsArrayDiff(const bson_iter_t *iter) {
	bson_t sub;
	bson_iter_t a;
	return Document(iter, &sub) && bson_iter_init_find(&a, &sub, "a") && BSON_ITER_HOLDS_BOOL(&a) && bson_iter_bool(&a);
}

// SectionFields reads the fields of one section ({name: value, ...}) of a document diff.
std::vector<Field> SectionFields(const bson_iter_t *section, const char *section_name) {
	bson_iter_t child;
	if (!BSON_ITER_HOLDS_DOCUMENT(section) || !bson_iter_recurse(section, &child))
		throw Malformed(std::string("section \"") + section_name + "\" is not a document");
	std::vector<Field> out;
	while (bson_iter_next(&child))
		out.push_back(Field{bson_iter_key(&child), child});
	return out;
}

// ParseDocDiff reads a document diff's sections.
DocDiff ParseDocDiff(const bson_t *diff) {
	DocDiff out;
	bson_iter_t iter;
	if (!bson_iter_init(&iter, diff))
		throw Malformed("diff is not a valid BSON document");
	while (bson_iter_next(&iter)) {
		const std::string key = bson_iter_key(&iter);
		if (key == "d") {
			for (const Field &f : SectionFields(&iter, "d"))
				out.deletes.push_back(f.name);
		} else if (key == "u") {
			out.updates = SectionFields(&iter, "u");
		} else if (key == "i") {
			out.inserts = SectionFields(&iter, "i");
		} else if (!key.empty() && key[0] == 's') {
			if (!BSON_ITER_HOLDS_DOCUMENT(&iter))
				throw Malformed("sub-diff \"" + key + "\" is not a document");
			out.subdiffs.push_back(Field{key.substr(1), iter});
		} else if (key == "b") {
			throw SourceError(SourceErrorKind::kMalformed, 0, sqlstate::kFeatureNotSupported,
							  "binary update diffs (MongoDB 8's \"b\" section) are not supported", "",
							  "Use capture 'change_stream' for this source.");
		} else {
			throw Malformed("unknown diff section \"" + key + "\"");
		}
	}
	return out;
}

// ParseIndex reads the decimal array index after the one-letter prefix of an array diff key.
size_t ParseIndex(const std::string &key) {
	if (key.size() < 2 || key.size() > 11)
		throw Malformed("bad array diff key \"" + key + "\"");
	size_t index = 0;
	for (size_t k = 1; k < key.size(); ++k) {
		if (key[k] < '0' || key[k] > '9')
			throw Malformed("bad array diff key \"" + key + "\"");
		index = index * 10 + static_cast<size_t>(key[k] - '0');
	}
	if (index >= kMaxArraySize)
		throw Malformed("array index too large in \"" + key + "\"");
	return index;
}

// ParseArrayDiff reads an array diff's new length and modifications.
ArrayDiff ParseArrayDiff(const bson_t *diff) {
	ArrayDiff out;
	bson_iter_t iter;
	if (!bson_iter_init(&iter, diff))
		throw Malformed("array diff is not a valid BSON document");
	while (bson_iter_next(&iter)) {
		const std::string key = bson_iter_key(&iter);
		if (key == "a")
			continue;
		if (key == "l") {
			if (!BSON_ITER_HOLDS_INT(&iter) && !BSON_ITER_HOLDS_DOUBLE(&iter))
				throw Malformed("array diff length is not a number");
			int64_t size = bson_iter_as_int64(&iter);
			if (size < 0 || static_cast<uint64_t>(size) > kMaxArraySize)
				throw Malformed("array diff length out of range");
			out.new_size = static_cast<size_t>(size);
			continue;
		}
		if (key[0] != 'u' && key[0] != 's')
			throw Malformed("unknown array diff field \"" + key + "\"");
		if (key[0] == 's' && !BSON_ITER_HOLDS_DOCUMENT(&iter))
			throw Malformed("array sub-diff \"" + key + "\" is not a document");
		if (!out.mods.emplace(ParseIndex(key), ArrayMod{key[0] == 'u', iter}).second)
			throw Malformed("array index modified twice: \"" + key + "\"");
	}
	return out;
}

// JoinPath appends one component to a dotted path.
std::string JoinPath(const std::string &path, const std::string &part) {
	return path.empty() ? part : path + "." + part;
}

void DescribeDoc(const bson_t *diff, const std::string &path, UpdateDescription *out);

// DescribeSubDiff describes the sub-diff the iterator points at, found at path.
void DescribeSubDiff(const bson_iter_t *iter, const std::string &path, UpdateDescription *out);

// DescribeArray describes an array diff found at path.
void DescribeArray(const bson_t *diff, const std::string &path, UpdateDescription *out) {
	ArrayDiff parsed = ParseArrayDiff(diff);
	if (parsed.new_size)
		out->truncated_arrays.push_back(TruncatedArray{path, static_cast<int64_t>(*parsed.new_size)});
	for (const auto &[index, mod] : parsed.mods) {
		const std::string child = JoinPath(path, std::to_string(index));
		if (mod.is_update)
			bson_append_iter(out->updated_fields.get(), child.c_str(), -1, &mod.iter);
		else
			DescribeSubDiff(&mod.iter, child, out);
	}
}

void DescribeSubDiff(const bson_iter_t *iter, const std::string &path, UpdateDescription *out) {
	DepthGuard guard;
	bson_t sub;
	if (!Document(iter, &sub))
		throw Malformed("sub-diff at \"" + path + "\" is not a document");
	if (IsArrayDiff(iter))
		DescribeArray(&sub, path, out);
	else
		DescribeDoc(&sub, path, out);
}

// NoteName clears out->exact_paths when a field name holds a dot (its dotted path is ambiguous).
void NoteName(const std::string &name, UpdateDescription *out) {
	if (name.find('.') != std::string::npos)
		out->exact_paths = false;
}

// DescribeDoc describes a document diff found at path ("" for the root).
void DescribeDoc(const bson_t *diff, const std::string &path, UpdateDescription *out) {
	DocDiff parsed = ParseDocDiff(diff);
	for (const std::vector<Field> *section : {&parsed.updates, &parsed.inserts}) {
		for (const Field &f : *section) {
			NoteName(f.name, out);
			bson_append_iter(out->updated_fields.get(), JoinPath(path, f.name).c_str(), -1, &f.iter);
		}
	}
	for (const std::string &name : parsed.deletes) {
		NoteName(name, out);
		out->removed_fields.push_back(JoinPath(path, name));
	}
	for (const Field &f : parsed.subdiffs) {
		NoteName(f.name, out);
		DescribeSubDiff(&f.iter, JoinPath(path, f.name), out);
	}
}

void ApplyDoc(const bson_t *pre, const bson_t *diff, bson_t *out);
void ApplyArray(const bson_t *pre, const bson_t *diff, bson_t *out);

// AppendArrayElement appends the new value of one array element: the update's value, or the
// sub-diff applied to the pre-image element (null when it is missing or of the wrong type).
void AppendArrayElement(bson_t *out, const char *key, const bson_iter_t *pre, const ArrayMod &mod) {
	if (mod.is_update) {
		bson_append_iter(out, key, -1, &mod.iter);
		return;
	}
	DepthGuard guard;
	bson_t diff;
	bson_t pre_value;
	const bool want_array = IsArrayDiff(&mod.iter);
	if (!Document(&mod.iter, &diff))
		throw Malformed("array sub-diff is not a document");
	if (!pre || (want_array ? !BSON_ITER_HOLDS_ARRAY(pre) : !BSON_ITER_HOLDS_DOCUMENT(pre)) ||
		!Document(pre, &pre_value)) {
		bson_append_null(out, key, -1);
		return;
	}
	bson_t child;
	if (want_array) {
		bson_append_array_begin(out, key, -1, &child);
		ApplyArray(&pre_value, &diff, &child);
		bson_append_array_end(out, &child);
	} else {
		bson_append_document_begin(out, key, -1, &child);
		ApplyDoc(&pre_value, &diff, &child);
		bson_append_document_end(out, &child);
	}
}

// ApplyArray applies an array diff to the pre-image array pre, writing the elements into out
// (document_diff_applier.cpp applyDiffToArray: truncate or pad to l, nulls for gaps).
void ApplyArray(const bson_t *pre, const bson_t *diff, bson_t *out) {
	ArrayDiff parsed = ParseArrayDiff(diff);
	auto next = parsed.mods.begin();
	bson_iter_t iter;
	bson_iter_init(&iter, pre);
	size_t idx = 0;
	for (; (!parsed.new_size || idx < *parsed.new_size) && bson_iter_next(&iter); ++idx) {
		const std::string key = std::to_string(idx);
		if (next != parsed.mods.end() && next->first == idx) {
			AppendArrayElement(out, key.c_str(), &iter, next->second);
			++next;
		} else {
			bson_append_iter(out, key.c_str(), -1, &iter);
		}
	}
	for (; (parsed.new_size && idx < *parsed.new_size) || next != parsed.mods.end(); ++idx) {
		const std::string key = std::to_string(idx);
		if (next != parsed.mods.end() && next->first == idx) {
			AppendArrayElement(out, key.c_str(), nullptr, next->second);
			++next;
		} else {
			bson_append_null(out, key.c_str(), -1);
		}
		// Padding is the one way a small diff makes a large document: stop where mongod would have.
		if (out->len > kMaxDocumentBytes)
			throw Malformed("an array diff pads an array past MongoDB's 16 MiB document size");
	}
}

// ApplyDoc applies a document diff to pre, writing the fields into out
// (document_diff_applier.cpp applyDiffToObject).
void ApplyDoc(const bson_t *pre, const bson_t *diff, bson_t *out) {
	DocDiff parsed = ParseDocDiff(diff);
	enum class Kind { kDelete, kUpdate, kInsert, kSubDiff };
	struct Mod {
		Kind kind;
		const Field *field;
	};
	std::unordered_map<std::string, Mod> mods;
	auto add = [&mods](const std::string &name, Mod mod) {
		if (!mods.emplace(name, mod).second)
			throw Malformed("duplicate field name in diff: \"" + name + "\"");
	};
	for (const std::string &name : parsed.deletes)
		add(name, Mod{Kind::kDelete, nullptr});
	for (const Field &f : parsed.updates)
		add(f.name, Mod{Kind::kUpdate, &f});
	for (const Field &f : parsed.inserts)
		add(f.name, Mod{Kind::kInsert, &f});
	for (const Field &f : parsed.subdiffs)
		add(f.name, Mod{Kind::kSubDiff, &f});

	std::set<std::string> updated_in_place;
	bson_iter_t iter;
	bson_iter_init(&iter, pre);
	while (bson_iter_next(&iter)) {
		const char *key = bson_iter_key(&iter);
		auto found = mods.find(key);
		if (found == mods.end()) {
			bson_append_iter(out, key, -1, &iter);
			continue;
		}
		const Mod &mod = found->second;
		if (mod.kind == Kind::kUpdate) {
			bson_append_iter(out, key, -1, &mod.field->iter);
			updated_in_place.insert(key);
		} else if (mod.kind == Kind::kSubDiff) {
			ArrayMod as_element{false, mod.field->iter};
			AppendArrayElement(out, key, &iter, as_element);
		}
		// kDelete: dropped; kInsert: appended at the end below.
	}
	for (const std::vector<Field> *section : {&parsed.updates, &parsed.inserts}) {
		for (const Field &f : *section) {
			if (!updated_in_place.count(f.name))
				bson_append_iter(out, f.name.c_str(), -1, &f.iter);
		}
	}
}

} // namespace

UpdateDescription ParseDiff(const bson_t *diff) {
	UpdateDescription out;
	out.updated_fields = NewBson();
	DescribeDoc(diff, "", &out);
	return out;
}

UpdateDescription ParseModifierUpdate(const bson_t *update) {
	UpdateDescription out;
	out.updated_fields = NewBson();
	bson_iter_t iter;
	bson_iter_t child;
	if (bson_iter_init_find(&iter, update, "$set") && bson_iter_recurse(&iter, &child)) {
		while (bson_iter_next(&child))
			bson_append_iter(out.updated_fields.get(), bson_iter_key(&child), -1, &child);
	}
	if (bson_iter_init_find(&iter, update, "$unset") && bson_iter_recurse(&iter, &child)) {
		while (bson_iter_next(&child))
			out.removed_fields.emplace_back(bson_iter_key(&child));
	}
	return out;
}

Bson ApplyDiff(const bson_t *doc, const bson_t *diff) {
	Bson out = NewBson();
	ApplyDoc(doc, diff, out.get());
	return out;
}

} // namespace mongo_river::mongo
