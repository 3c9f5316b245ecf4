// infer.hpp: infer a mapping from a sample of documents (PG-free; the SQL layer does the sampling).
//
// Rules: pk column `id` from `_id` (text for strings or ObjectIds alone, bigint for integers, uuid,
// timestamptz, numeric, double precision when every sampled `_id` has that type; mixed types -> text
// with "format": "extjson"); one column per top-level field, nested documents flattened to dotted
// paths up to max_depth levels (`author.name` -> `author_name`); conflicting sampled types widened
// (int32+int64 -> bigint, ints+double -> double precision, +decimal128 -> numeric, any scalar +
// string -> text, anything else mixed -> jsonb); arrays of scalars -> X[] (jsonb when mixed or
// empty); arrays of documents -> a child table `<table>_<field>` (fk `<table>_id`, position `pos`);
// documents with dynamic-looking keys (more than dynamic_key_threshold distinct keys, or every key
// an ObjectId, number, UUID or date) -> jsonb; fields never seen with a value -> text; keys that are
// empty, start with '$' or are not valid UTF-8 are left to the document column, which is always added
// (`document`).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <bson/bson.h>

#include "mongo_river/mapping/mapping.hpp"
#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mapping {

struct InferOptions {
	// table is the target table's name, the prefix of child table and fk names.
	std::string table = "collection";
	int max_depth = 3;
	std::size_t dynamic_key_threshold = 20;
	// max_columns bounds the columns of each table; later fields stay in the document column only.
	std::size_t max_columns = 200;
};

// InferMapping builds a validated Mapping that fits every sampled document (count documents at
// documents; a plain array because std::vector<bson_t *> trips -Wignored-attributes).
Mapping InferMapping(const bson_t *const *documents, std::size_t count, const InferOptions &options = {});

// InferMapping is the same for documents held in mongo::Bson handles.
Mapping InferMapping(const std::vector<mongo::Bson> &documents, const InferOptions &options = {});

} // namespace mongo_river::mapping
