// handles.hpp: RAII owners for libmongoc/libbson objects (PG-free).
//
// Every driver handle lives in one of these, so a thrown exception (or a PostgreSQL ERROR turned
// into one by pg::Call) releases it. No global object may own a handle: static destructors run in
// every backend at exit.
#pragma once

#include <memory>

#include <mongoc/mongoc.h>

namespace mongo_river::mongo {

// Deleter calls Destroy on a non-null pointer; one type per libmongoc/libbson destroy function.
template <auto Destroy> struct Deleter {
	template <typename T> void operator()(T *p) const noexcept {
		if (p)
			Destroy(p);
	}
};

using Uri = std::unique_ptr<mongoc_uri_t, Deleter<mongoc_uri_destroy>>;
using Client = std::unique_ptr<mongoc_client_t, Deleter<mongoc_client_destroy>>;
using Database = std::unique_ptr<mongoc_database_t, Deleter<mongoc_database_destroy>>;
using Collection = std::unique_ptr<mongoc_collection_t, Deleter<mongoc_collection_destroy>>;
using Cursor = std::unique_ptr<mongoc_cursor_t, Deleter<mongoc_cursor_destroy>>;
using Session = std::unique_ptr<mongoc_client_session_t, Deleter<mongoc_client_session_destroy>>;
using ReadPrefs = std::unique_ptr<mongoc_read_prefs_t, Deleter<mongoc_read_prefs_destroy>>;
// bson_t is declared with an alignment attribute that a template argument drops; only pointers to
// it are stored, so the dropped attribute changes nothing.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
using Bson = std::unique_ptr<bson_t, Deleter<bson_destroy>>;
#pragma GCC diagnostic pop

// NewBson returns an empty heap-allocated BSON document.
inline Bson NewBson() {
	return Bson(bson_new());
}

} // namespace mongo_river::mongo
