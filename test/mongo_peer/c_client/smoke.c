/*
 * smoke.c drives a MongoDB server with libmongoc 1.23 the way the extension does: CRUD, a
 * collection change stream with resume, database and cluster change streams, tailing
 * local.oplog.rs with a tailable awaitData cursor, a multi-document transaction and a pool.  Usage: smoke
 * <mongodb-uri>.  Prints "SMOKE OK" on success.
 */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                                                               \
	do {                                                                                                               \
		if (!(cond)) {                                                                                                 \
			fprintf(stderr, "FAIL line %d: ", __LINE__);                                                               \
			fprintf(stderr, __VA_ARGS__);                                                                              \
			fprintf(stderr, "\n");                                                                                     \
			exit(1);                                                                                                   \
		}                                                                                                              \
	} while (0)

static void check_pool(const char *uri_str) {
	bson_error_t error;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &error);
	CHECK(uri, "pool uri: %s", error.message);
	mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
	mongoc_client_t *client = mongoc_client_pool_pop(pool);
	bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
	bool ok = mongoc_client_command_simple(client, "admin", ping, NULL, NULL, &error);
	CHECK(ok, "pooled ping: %s", error.message);
	bson_destroy(ping);
	mongoc_client_pool_push(pool, client);
	mongoc_client_pool_destroy(pool);
	mongoc_uri_destroy(uri);
}

static int64_t count_docs(mongoc_collection_t *coll, const bson_t *filter, mongoc_client_session_t *s) {
	bson_error_t error;
	bson_t opts = BSON_INITIALIZER;
	if (s)
		CHECK(mongoc_client_session_append(s, &opts, &error), "append session: %s", error.message);
	int64_t n = mongoc_collection_count_documents(coll, filter, &opts, NULL, NULL, &error);
	CHECK(n >= 0, "count_documents: %s", error.message);
	bson_destroy(&opts);
	return n;
}

static void crud(mongoc_collection_t *coll) {
	bson_error_t error;
	mongoc_collection_drop(coll, NULL);
	for (int i = 0; i < 3; i++) {
		bson_t *doc = BCON_NEW("_id", BCON_INT32(i), "v", BCON_INT32(i * 10), "tags", "[", "a", "]");
		CHECK(mongoc_collection_insert_one(coll, doc, NULL, NULL, &error), "insert: %s", error.message);
		bson_destroy(doc);
	}
	bson_t *dup = BCON_NEW("_id", BCON_INT32(1));
	bson_t reply;
	CHECK(!mongoc_collection_insert_one(coll, dup, NULL, &reply, &error), "duplicate accepted");
	CHECK(error.code == 11000, "duplicate key code %u", error.code);
	bson_destroy(&reply);
	bson_destroy(dup);

	bson_t *sel = BCON_NEW("_id", BCON_INT32(1));
	bson_t *upd = BCON_NEW("$set", "{", "v", BCON_INT32(99), "}", "$push", "{", "tags", "b", "}");
	CHECK(mongoc_collection_update_one(coll, sel, upd, NULL, &reply, &error), "update: %s", error.message);
	bson_iter_t it;
	CHECK(bson_iter_init_find(&it, &reply, "modifiedCount") && bson_iter_as_int64(&it) == 1, "modifiedCount");
	bson_destroy(&reply);
	bson_destroy(upd);

	bson_t *filter = BCON_NEW("v", "{", "$gte", BCON_INT32(10), "}");
	bson_t *opts = BCON_NEW("sort", "{", "v", BCON_INT32(-1), "}");
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	int n = 0;
	int32_t first_id = -1;
	while (mongoc_cursor_next(cur, &doc)) {
		if (n == 0 && bson_iter_init_find(&it, doc, "_id"))
			first_id = bson_iter_int32(&it);
		n++;
	}
	CHECK(!mongoc_cursor_error(cur, &error), "find: %s", error.message);
	CHECK(n == 2 && first_id == 1, "find returned %d docs, first _id %d", n, first_id);
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	bson_destroy(opts);

	CHECK(mongoc_collection_delete_one(coll, sel, NULL, NULL, &error), "delete: %s", error.message);
	bson_t empty = BSON_INITIALIZER;
	CHECK(count_docs(coll, &empty, NULL) == 2, "count after delete");
	bson_destroy(sel);
}

static void change_stream(mongoc_collection_t *coll) {
	bson_error_t error;
	bson_t empty = BSON_INITIALIZER;
	bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(300));
	mongoc_change_stream_t *cs = mongoc_collection_watch(coll, &empty, opts);
	const bson_t *ev;
	CHECK(!mongoc_change_stream_error_document(cs, &error, NULL), "watch: %s", error.message);
	bson_t *d1 = BCON_NEW("_id", BCON_INT32(100));
	bson_t *d2 = BCON_NEW("_id", BCON_INT32(101));
	CHECK(mongoc_collection_insert_one(coll, d1, NULL, NULL, &error), "insert: %s", error.message);
	CHECK(mongoc_collection_insert_one(coll, d2, NULL, NULL, &error), "insert: %s", error.message);
	int got = 0;
	for (int tries = 0; tries < 10 && !got; tries++) {
		if (mongoc_change_stream_next(cs, &ev))
			got = 1;
	}
	CHECK(got, "no change event");
	bson_iter_t it;
	CHECK(bson_iter_init_find(&it, ev, "operationType") && strcmp(bson_iter_utf8(&it, NULL), "insert") == 0,
		  "operationType");
	bson_t token;
	bson_copy_to(mongoc_change_stream_get_resume_token(cs), &token);
	mongoc_change_stream_destroy(cs);
	bson_destroy(opts);

	opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(300), "resumeAfter", BCON_DOCUMENT(&token));
	cs = mongoc_collection_watch(coll, &empty, opts);
	got = 0;
	for (int tries = 0; tries < 10 && !got; tries++) {
		if (mongoc_change_stream_next(cs, &ev))
			got = 1;
	}
	CHECK(!mongoc_change_stream_error_document(cs, &error, NULL), "resume: %s", error.message);
	CHECK(got, "no event after resume");
	CHECK(bson_iter_init_find(&it, ev, "documentKey") && bson_iter_recurse(&it, &it) && bson_iter_find(&it, "_id") &&
			  bson_iter_int32(&it) == 101,
		  "resumed at the wrong event");
	mongoc_change_stream_destroy(cs);
	bson_destroy(opts);
	bson_destroy(&token);
	bson_destroy(d1);
	bson_destroy(d2);
}

static void wider_streams(mongoc_client_t *client, mongoc_collection_t *coll) {
	bson_error_t error;
	bson_t empty = BSON_INITIALIZER;
	bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(300));
	mongoc_database_t *db = mongoc_client_get_database(client, "smoke");
	mongoc_change_stream_t *dbs = mongoc_database_watch(db, &empty, opts);
	mongoc_change_stream_t *cls = mongoc_client_watch(client, &empty, opts);
	bson_t *d = BCON_NEW("_id", BCON_INT32(150));
	CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &error), "insert: %s", error.message);
	const bson_t *ev;
	int got_db = 0, got_cluster = 0;
	for (int tries = 0; tries < 10 && !(got_db && got_cluster); tries++) {
		if (!got_db && mongoc_change_stream_next(dbs, &ev))
			got_db = 1;
		if (!got_cluster && mongoc_change_stream_next(cls, &ev))
			got_cluster = 1;
	}
	CHECK(!mongoc_change_stream_error_document(dbs, &error, NULL), "db watch: %s", error.message);
	CHECK(!mongoc_change_stream_error_document(cls, &error, NULL), "client watch: %s", error.message);
	CHECK(got_db && got_cluster, "database/cluster stream missed the insert (%d, %d)", got_db, got_cluster);
	mongoc_change_stream_destroy(dbs);
	mongoc_change_stream_destroy(cls);
	mongoc_database_destroy(db);
	bson_destroy(opts);
	bson_destroy(d);
}

static void tail_oplog(mongoc_client_t *client, mongoc_collection_t *coll) {
	bson_error_t error;
	bson_t reply;
	bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
	CHECK(mongoc_client_command_simple(client, "admin", ping, NULL, &reply, &error), "ping: %s", error.message);
	bson_iter_t it;
	uint32_t t = 0, i = 0;
	CHECK(bson_iter_init_find(&it, &reply, "operationTime"), "no operationTime");
	bson_iter_timestamp(&it, &t, &i);
	bson_destroy(&reply);
	bson_destroy(ping);

	mongoc_collection_t *oplog = mongoc_client_get_collection(client, "local", "oplog.rs");
	bson_t *filter = BCON_NEW("ts", "{", "$gt", BCON_TIMESTAMP(t, i), "}");
	bson_t *opts = BCON_NEW("tailable", BCON_BOOL(true), "awaitData", BCON_BOOL(true), "maxAwaitTimeMS",
							BCON_INT64(200), "oplogReplay", BCON_BOOL(true));
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, filter, opts, NULL);
	const bson_t *doc;
	CHECK(!mongoc_cursor_next(cur, &doc), "unexpected oplog entry before the write");
	CHECK(!mongoc_cursor_error(cur, &error), "tail: %s", error.message);
	CHECK(mongoc_cursor_more(cur), "tailable cursor died");

	bson_t *d = BCON_NEW("_id", BCON_INT32(200), "x", BCON_UTF8("tail"));
	CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &error), "insert: %s", error.message);
	int found = 0;
	for (int tries = 0; tries < 10 && !found; tries++) {
		while (mongoc_cursor_next(cur, &doc)) {
			if (bson_iter_init_find(&it, doc, "op") && strcmp(bson_iter_utf8(&it, NULL), "i") == 0)
				found = 1;
		}
		CHECK(!mongoc_cursor_error(cur, &error), "tail: %s", error.message);
	}
	CHECK(found, "insert not seen in oplog");
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(oplog);
	bson_destroy(filter);
	bson_destroy(opts);
	bson_destroy(d);
}

static void transaction(mongoc_client_t *client, mongoc_collection_t *coll) {
	bson_error_t error;
	mongoc_client_session_t *s = mongoc_client_start_session(client, NULL, &error);
	CHECK(s, "start session: %s", error.message);
	CHECK(mongoc_client_session_start_transaction(s, NULL, &error), "start txn: %s", error.message);
	bson_t opts = BSON_INITIALIZER;
	CHECK(mongoc_client_session_append(s, &opts, &error), "append: %s", error.message);
	for (int i = 300; i < 302; i++) {
		bson_t *d = BCON_NEW("_id", BCON_INT32(i));
		CHECK(mongoc_collection_insert_one(coll, d, &opts, NULL, &error), "txn insert: %s", error.message);
		bson_destroy(d);
	}
	bson_t *f = BCON_NEW("_id", "{", "$gte", BCON_INT32(300), "}");
	CHECK(count_docs(coll, f, NULL) == 0, "transaction writes visible before commit");
	CHECK(count_docs(coll, f, s) == 2, "transaction does not see its own writes");
	bson_t reply;
	CHECK(mongoc_client_session_commit_transaction(s, &reply, &error), "commit: %s", error.message);
	bson_destroy(&reply);
	CHECK(count_docs(coll, f, NULL) == 2, "transaction writes missing after commit");
	bson_destroy(f);
	bson_destroy(&opts);
	mongoc_client_session_destroy(s);
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s <mongodb-uri>\n", argv[0]);
		return 2;
	}
	mongoc_init();
	bson_error_t error;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &error);
	CHECK(uri, "uri: %s", error.message);
	mongoc_client_t *client = mongoc_client_new_from_uri(uri);
	CHECK(client, "client");
	mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(client, "mongo-peer-smoke");
	mongoc_collection_t *coll = mongoc_client_get_collection(client, "smoke", "c");

	crud(coll);
	change_stream(coll);
	wider_streams(client, coll);
	tail_oplog(client, coll);
	transaction(client, coll);
	check_pool(argv[1]);

	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	mongoc_uri_destroy(uri);
	mongoc_cleanup();
	printf("SMOKE OK\n");
	return 0;
}
