// declare.cpp: SQL-callable validators behind the declaration functions (create_river,
// map_collection, import_mappings): thin wrappers over the PG-free core.
#include <algorithm>
#include <string>

#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/mapping/connector.hpp"
#include "mongo_river/mapping/infer.hpp"
#include "mongo_river/mapping/mapping.hpp"
#include "mongo_river/mapping/names.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/mongo/uri.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "parser/parse_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

using mongo_river::pg::Guard;
using mongo_river::pg::TextArg;
using mongo_river::pg::TextDatum;

// mongo_river_check_uri(uri text) parses uri with libmongoc and returns it redacted; a malformed
// URI raises 22023 without showing the password.
MONGO_RIVER_FUNCTION(mongo_river_check_uri) {
	return Guard([&] {
		std::string uri = TextArg(PG_GETARG_DATUM(0));
		if (mongo_river::catalog::IsServerUri(uri))
			return TextDatum(uri); // checked with the owner's user mapping by the catalog's trigger
		// Parses with libmongoc's parser (malformed: 22023), collecting its warnings.
		mongo_river::mongo::RequireKnownOptions(uri, "MongoDB URI \"" + mongo_river::mongo::RedactUri(uri) + "\"");
		return TextDatum(mongo_river::mongo::RedactUri(uri));
	});
}

// mongo_river_redact_uri(uri text) returns uri with its password replaced by ****.
MONGO_RIVER_FUNCTION(mongo_river_redact_uri) {
	return Guard([&] { return TextDatum(mongo_river::mongo::RedactUri(TextArg(PG_GETARG_DATUM(0)))); });
}

// mongo_river_normalize_mapping(mapping jsonb) validates a mapping document and returns its
// canonical form (the form the catalog stores and the worker reads).
MONGO_RIVER_FUNCTION(mongo_river_normalize_mapping) {
	return Guard([&] {
		std::string json = mongo_river::pg::JsonbText(PG_GETARG_DATUM(0));
		mongo_river::mapping::Mapping mapping = mongo_river::mapping::ParseMapping(json);
		return mongo_river::pg::JsonbDatum(mongo_river::mapping::SerializeMapping(mapping));
	});
}

// mongo_river_default_identifier(name text) applies the documented name rules to a collection
// name or field path.
MONGO_RIVER_FUNCTION(mongo_river_default_identifier) {
	return Guard([&] { return TextDatum(mongo_river::mapping::DefaultIdentifier(TextArg(PG_GETARG_DATUM(0)))); });
}

namespace {

// ResolvedType is what parseTypeString found for a type name.
struct ResolvedType {
	Oid oid;
	int32 typmod;
};

// ResolveType parses a type name as SQL would (raises 42704 for an unknown type, 42601 for bad syntax).
ResolvedType ResolveType(const std::string &name) {
	ResolvedType type{InvalidOid, -1};
	mongo_river::pg::Call([&] { parseTypeString(name.c_str(), &type.oid, &type.typmod, false); });
	return type;
}

// TypeNamespace returns the schema a type lives in.
Oid TypeNamespace(Oid type) {
	HeapTuple tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for type %u", type);
	Oid namespace_oid = ((Form_pg_type)GETSTRUCT(tuple))->typnamespace;
	ReleaseSysCache(tuple);
	return namespace_oid;
}

} // namespace

// mongo_river_resolve_type(name text) returns the canonical spelling of a PostgreSQL type name,
// schema-qualified unless the type is in pg_catalog, so that it means the same type whatever the
// search_path of the worker that later reads it.
MONGO_RIVER_FUNCTION(mongo_river_resolve_type) {
	return Guard([&] {
		ResolvedType type = ResolveType(TextArg(PG_GETARG_DATUM(0)));
		char *formatted = mongo_river::pg::Call([&] {
			bits16 flags = FORMAT_TYPE_TYPEMOD_GIVEN;
			if (get_typtype(type.oid) == TYPTYPE_PSEUDO)
				ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
								errmsg("type %s cannot be a mapped column's type", format_type_be(type.oid)),
								errhint("Use a base, domain, enum, composite or array type; documents go to jsonb.")));
			Oid element = get_element_type(type.oid);
			Oid type_namespace = TypeNamespace(OidIsValid(element) ? element : type.oid);
			if (isAnyTempNamespace(type_namespace))
				ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								errmsg("type %s is temporary: a mapped column's type must outlive the session",
									   format_type_be(type.oid)),
								errhint("Use a permanent type (CREATE TYPE in a schema), schema-qualified.")));
			if (type_namespace != PG_CATALOG_NAMESPACE)
				flags |= FORMAT_TYPE_FORCE_QUALIFY;
			return format_type_extended(type.oid, type.typmod, flags);
		});
		return TextDatum(formatted);
	});
}

// mongo_river_connector_mappings(mappings jsonb) converts a mongo-connector-postgresql mappings.json
// into [{source, table, mapping, indexes: [{unique, name, table, columns}]}], or raises the reason it
// cannot (nothing is half-converted).
MONGO_RIVER_FUNCTION(mongo_river_connector_mappings) {
	return Guard([&] {
		using mongo_river::mapping::Json;
		std::string text = mongo_river::pg::JsonbText(PG_GETARG_DATUM(0));
		std::vector<mongo_river::mapping::ImportedCollection> imported =
			mongo_river::mapping::ImportConnectorMappings(text);
		Json result = Json::NewArray();
		for (const auto &collection : imported) {
			Json entry = Json::NewObject();
			entry.Set("source", Json::NewString(collection.database + "." + collection.collection));
			entry.Set("table", Json::NewString(collection.table));
			entry.Set("mapping", mongo_river::mapping::MappingToJson(collection.mapping));
			Json indexes = Json::NewArray();
			for (const auto &index : collection.indexes) {
				Json definition = Json::NewObject();
				definition.Set("unique", Json::NewBool(index.unique));
				definition.Set("name", Json::NewString(index.name));
				definition.Set("table", Json::NewString(index.table));
				Json columns = Json::NewArray();
				for (const std::string &column : index.columns)
					columns.Append(Json::NewString(column));
				definition.Set("columns", columns);
				indexes.Append(definition);
			}
			entry.Set("indexes", indexes);
			result.Append(entry);
		}
		return mongo_river::pg::JsonbDatum(result.Dump());
	});
}

// mongo_river_infer(uri text, db text, collection text, sample_size int, table text) samples
// documents ($sample) and returns the mapping inferred from them.
MONGO_RIVER_FUNCTION(mongo_river_infer) {
	return Guard([&] {
		std::string uri = TextArg(PG_GETARG_DATUM(0));
		std::string db = TextArg(PG_GETARG_DATUM(1));
		std::string collection = TextArg(PG_GETARG_DATUM(2));
		int32 sample_size = PG_GETARG_INT32(3);
		mongo_river::mapping::InferOptions options;
		options.table = TextArg(PG_GETARG_DATUM(4));
		mongo_river::pg::EnsureMongocInitialized();
		std::unique_ptr<mongo_river::mongo::Source> opened = mongo_river::catalog::OpenSourceFor(uri); // secrets
		mongo_river::mongo::Source &source = *opened;
		std::vector<mongo_river::mongo::Bson> sample = source.Sample(db, collection, sample_size);
		if (sample.empty()) {
			// The source answered: an empty sample is a missing collection or an empty one.
			std::vector<std::string> names;
			bool listed = true;
			try {
				names = source.ListCollections(db, true);
			} catch (const mongo_river::mongo::SourceError &) {
				listed = false; // e.g. no listCollections privilege: say only that nothing was sampled
			}
			if (listed && std::find(names.begin(), names.end(), collection) == names.end())
				throw mongo_river::Error(
					"42P01", "infer_mapping: collection \"" + db + "." + collection + "\" does not exist at the source",
					names.empty() ? "Database \"" + db + "\" has no collections."
								  : "Database \"" + db + "\" has " + std::to_string(names.size()) + " collection(s).",
					"Check the name (db.collection, case-sensitive); the source's collections are listed by "
					"db.getCollectionNames() in mongosh.");
			throw mongo_river::Error(mongo_river::sqlstate::kInvalidParameterValue,
									 "infer_mapping: collection \"" + db + "." + collection +
										 "\" has no documents to sample",
									 {}, "Insert documents first, or pass a mapping to map_collection.");
		}
		mongo_river::mapping::Mapping mapping = mongo_river::mapping::InferMapping(sample, options);
		return mongo_river::pg::JsonbDatum(mongo_river::mapping::SerializeMapping(mapping));
	});
}

// mongo_river_list_collections(uri text, db text) lists the collections of a source database
// (views and system collections excluded), for map_database and the discovery of new ones.
MONGO_RIVER_FUNCTION(mongo_river_list_collections) {
	return Guard([&]() -> Datum {
		ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
		std::string uri = TextArg(PG_GETARG_DATUM(0));
		std::string db = TextArg(PG_GETARG_DATUM(1));
		mongo_river::pg::EnsureMongocInitialized();
		std::vector<std::string> names;
		{
			names = mongo_river::catalog::OpenSourceFor(uri)->ListCollections(db); // secrets
		}
		mongo_river::pg::Call([&] {
			InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
			for (const std::string &name : names) {
				Datum value = PointerGetDatum(cstring_to_text_with_len(name.data(), int(name.size())));
				bool isnull = false;
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
			}
		});
		return Datum(0);
	});
}
