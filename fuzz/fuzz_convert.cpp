// fuzz_convert.cpp: libFuzzer target for BSON -> rows conversion and mapping inference.
//
// The input is a BSON document (its length prefix is fixed up so that mutations stay parseable).
// It is converted by a fixed mapping with one column of every type family, arrays and nested
// arrays; the inferred mapping of the document must validate, round-trip, and convert it.
// Invariants: only ConversionError is reported per document, rows have their layout's width.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <bson/bson.h>

#include "mongo_river/convert/convert.hpp"
#include "mongo_river/convert/row.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/infer.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace {

const char *const kMapping = R"json({"pk": "id", "columns": {
  "id": {"path": "_id", "type": "text"},
  "t": {"path": "a", "type": "text"}, "i": {"path": "b", "type": "integer"}, "s": {"path": "c", "type": "smallint"},
  "l": {"path": "d", "type": "bigint"}, "r": {"path": "e", "type": "real"}, "f": {"path": "f", "type": "double precision"},
  "n": {"path": "g", "type": "numeric(10,2)"}, "b": {"path": "h", "type": "boolean"},
  "tz": {"path": "i", "type": "timestamptz"}, "ts": {"path": "j", "type": "timestamp"}, "dt": {"path": "k", "type": "date"},
  "u": {"path": "l", "type": "uuid"}, "y": {"path": "m", "type": "bytea"}, "jb": {"path": "n", "type": "jsonb"},
  "js": {"path": "o", "type": "json"}, "ta": {"path": "p", "type": "text[]"}, "ia": {"path": "q", "type": "integer[]"},
  "ja": {"path": "r", "type": "jsonb[]"}, "ci": {"path": "s", "type": "citext"}, "na": {"path": "t", "type": "numeric[]"},
  "x": {"path": "u", "type": "text", "format": "extjson"}, "p": {"path": "v", "type": "boolean", "format": "presence"},
  "deep": {"path": "w.a.0.b", "type": "text"}, "dots": {"path": ["x.y", "z"], "type": "bigint"}},
 "arrays": {
  "c": {"path": "y", "table": "child", "fk": "parent", "position": "pos", "id": "cid",
        "columns": {"v": {"path": "$", "type": "text"}, "k": {"path": "a", "type": "integer"}},
        "arrays": {"g": {"path": "b", "table": "grandchild", "fk": "parent", "position": "pos",
                         "columns": {"v": {"path": "$", "type": "double precision"}}}}},
  "e": {"path": "z", "table": "elems", "fk": "parent", "columns": {"v": {"path": "$", "type": "uuid[]"}}}},
 "document": "doc"})json";

// Check aborts (a crash libFuzzer reports) when an invariant does not hold.
void Check(bool condition) {
	if (!condition)
		std::abort();
}

// CheckShape verifies that every row has the width of its table in the layout.
void CheckShape(const mongo_river::convert::DocumentConverter &converter,
				const mongo_river::convert::ConvertedDocument &result) {
	const auto &layout = converter.Layout();
	Check(result.row.size() == layout[0].columns.size());
	Check(result.children.size() + 1 == layout.size());
	for (const auto &child : result.children)
		for (const auto &row : child.rows)
			Check(row.size() == layout[child.table].columns.size());
	for (const auto &error : result.errors)
		Check(error.Sqlstate().size() == 5 && !error.Message().empty());
	if (result.errors.empty())
		Check(!result.key.IsNull());
}

// ConvertWithInferredMapping infers a mapping from the document alone and converts it with it.
void ConvertWithInferredMapping(const bson_t &document) {
	namespace mapping = mongo_river::mapping;
	const bson_t *documents[] = {&document};
	mapping::Mapping inferred = mapping::InferMapping(documents, 1);
	Check(mapping::ParseMapping(mapping::SerializeMapping(inferred)) == inferred);
	mongo_river::convert::DocumentConverter converter(inferred);
	CheckShape(converter, converter.Convert(document));
}

} // namespace

// LLVMFuzzerTestOneInput converts one BSON document.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
	static const mongo_river::convert::DocumentConverter converter(mongo_river::mapping::ParseMapping(kMapping));
	if (size < 5 || size > (1u << 20))
		return 0;
	std::vector<std::uint8_t> buffer(data, data + size);
	std::uint32_t length = static_cast<std::uint32_t>(size);
	std::memcpy(buffer.data(), &length, 4);
	buffer.back() = 0;
	bson_t document;
	if (!bson_init_static(&document, buffer.data(), buffer.size()))
		return 0;
	CheckShape(converter, converter.Convert(document));
	bson_iter_t iter;
	if (bson_iter_init_find(&iter, &document, "_id"))
		(void)mongo_river::convert::DocumentIdText(*bson_iter_value(&iter));
	if (bson_validate(&document, BSON_VALIDATE_NONE, nullptr))
		ConvertWithInferredMapping(document);
	return 0;
}
