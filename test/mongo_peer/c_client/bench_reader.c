/*
 * bench_reader: the libmongoc reader bench/peer_bench.py uses, so that the client is not what
 * bounds the figures (pymongo builds a Python object per document).
 *
 *   bench_reader URI DB COLL scan|idscan N
 *   bench_reader URI DB COLL events|nsevents|oplog N TS_T TS_I
 *
 * scan reads find({}) to the end, idscan find({}) sorted by _id (how a copy reads); events opens a collection change
 * stream at startAtOperationTime Timestamp(TS_T, TS_I) and reads N events; nsevents does the same through a $match on
 * the namespace, as the product's streams do; oplog tails local.oplog.rs after that time with a namespace filter like
 * the product's until N entries came.  Prints "<count> <seconds>".
 */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* now_s returns a monotonic time in seconds. */
static double now_s(void) {
	return (double)bson_get_monotonic_time() / 1e6;
}

/* scan counts the documents of find({}) on coll, sorted by _id when by_id is set. */
static long scan(mongoc_collection_t *coll, int by_id) {
	bson_t filter = BSON_INITIALIZER;
	bson_t *opts = by_id ? BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}") : NULL;
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
	const bson_t *doc;
	long n = 0;
	bson_error_t err;
	while (mongoc_cursor_next(cur, &doc))
		n++;
	if (mongoc_cursor_error(cur, &err)) {
		fprintf(stderr, "scan: %s\n", err.message);
		exit(1);
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	if (opts)
		bson_destroy(opts);
	return n;
}

/* events reads want change events from a stream opened at Timestamp(t, i), through a $match on
 * the namespace db.coll (an $or like the product's) when ns_match is set. */
static long events(mongoc_collection_t *coll, long want, uint32_t t, uint32_t i, int ns_match, const char *db,
				   const char *name) {
	bson_t pipeline = BSON_INITIALIZER;
	if (ns_match) {
		bson_t *p = BCON_NEW("pipeline", "[", "{", "$match", "{", "$or", "[", "{", "ns.db", BCON_UTF8(db), "ns.coll",
							 BCON_UTF8(name), "}", "{", "to.db", BCON_UTF8(db), "to.coll", BCON_UTF8(name), "}", "{",
							 "operationType", "dropDatabase", "ns.db", BCON_UTF8(db), "}", "{", "operationType",
							 "invalidate", "}", "]", "}", "}", "]");
		bson_copy_to(p, &pipeline);
		bson_destroy(p);
	}
	bson_t opts = BSON_INITIALIZER;
	BSON_APPEND_TIMESTAMP(&opts, "startAtOperationTime", t, i);
	BSON_APPEND_INT64(&opts, "maxAwaitTimeMS", 500);
	mongoc_change_stream_t *cs = mongoc_collection_watch(coll, &pipeline, &opts);
	const bson_t *doc;
	const bson_t *errdoc;
	bson_error_t err;
	long n = 0;
	while (n < want) {
		if (mongoc_change_stream_next(cs, &doc)) {
			n++;
		} else if (mongoc_change_stream_error_document(cs, &err, &errdoc)) {
			fprintf(stderr, "events: %s\n", err.message);
			exit(1);
		}
	}
	mongoc_change_stream_destroy(cs);
	bson_destroy(&pipeline);
	bson_destroy(&opts);
	return n;
}

/* oplog tails local.oplog.rs after Timestamp(t, i) with a filter on db.coll, its database's
 * commands, admin commands and no-ops, until want entries came. */
static long oplog(mongoc_client_t *client, long want, uint32_t t, uint32_t i, const char *db, const char *name) {
	char ns[512], cmds[512];
	snprintf(ns, sizeof ns, "%s.%s", db, name);
	snprintf(cmds, sizeof cmds, "%s.$cmd", db);
	mongoc_collection_t *coll = mongoc_client_get_collection(client, "local", "oplog.rs");
	bson_t *filter = BCON_NEW("ts", "{", "$gt", BCON_TIMESTAMP(t, i), "}", "$or", "[", "{", "ns", "{", "$in", "[",
							  BCON_UTF8(ns), "]", "}", "}", "{", "ns", "{", "$in", "[", "admin.$cmd", BCON_UTF8(cmds),
							  "]", "}", "}", "{", "op", "n", "}", "]");
	bson_t *opts =
		BCON_NEW("tailable", BCON_BOOL(true), "awaitData", BCON_BOOL(true), "maxAwaitTimeMS", BCON_INT64(500));
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	const bson_t *doc;
	bson_error_t err;
	long n = 0;
	while (n < want) {
		if (mongoc_cursor_next(cur, &doc))
			n++;
		else if (mongoc_cursor_error(cur, &err)) {
			fprintf(stderr, "oplog: %s\n", err.message);
			exit(1);
		}
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	return n;
}

/* main parses the arguments, runs one measurement and prints count and seconds. */
int main(int argc, char **argv) {
	if (argc < 6) {
		fprintf(stderr, "usage: bench_reader URI DB COLL scan|idscan|events|nsevents|oplog N [TS_T TS_I]\n");
		return 2;
	}
	mongoc_init();
	bson_error_t err;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &err);
	if (!uri) {
		fprintf(stderr, "uri: %s\n", err.message);
		return 2;
	}
	mongoc_client_t *client = mongoc_client_new_from_uri(uri);
	mongoc_collection_t *coll = mongoc_client_get_collection(client, argv[2], argv[3]);
	long want = atol(argv[5]);
	bson_t ping = BSON_INITIALIZER;
	BSON_APPEND_INT32(&ping, "ping", 1);
	if (!mongoc_client_command_simple(client, "admin", &ping, NULL, NULL, &err)) {
		fprintf(stderr, "ping: %s\n", err.message);
		return 1;
	}
	double t0 = now_s();
	long n;
	if (strcmp(argv[4], "scan") == 0 || strcmp(argv[4], "idscan") == 0) {
		n = scan(coll, strcmp(argv[4], "idscan") == 0);
	} else if (argc >= 8 && strcmp(argv[4], "oplog") == 0) {
		n = oplog(client, want, (uint32_t)strtoul(argv[6], NULL, 10), (uint32_t)strtoul(argv[7], NULL, 10), argv[2],
				  argv[3]);
	} else if (argc >= 8) {
		n = events(coll, want, (uint32_t)strtoul(argv[6], NULL, 10), (uint32_t)strtoul(argv[7], NULL, 10),
				   strcmp(argv[4], "nsevents") == 0, argv[2], argv[3]);
	} else {
		fprintf(stderr, "events needs TS_T TS_I\n");
		return 2;
	}
	printf("%ld %.6f\n", n, now_s() - t0);
	bson_destroy(&ping);
	mongoc_collection_destroy(coll);
	mongoc_client_destroy(client);
	mongoc_uri_destroy(uri);
	mongoc_cleanup();
	return 0;
}
