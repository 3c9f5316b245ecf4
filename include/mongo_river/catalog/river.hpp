// river.hpp: a river's catalog rows as C++ structs (read with SPI inside a transaction).
#pragma once

#include <string>
#include <vector>

#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::catalog {

// RiverOptions are a river's options (ARCHITECTURE.md §2) with their defaults applied.
struct RiverOptions {
	std::string capture = "change_stream";
	int batch_size = 1000;
	int batch_ms = 1000;
	bool dry_run = false;
	std::string on_error = "reject";
	std::string password_file;
};

// MappingRow is one mapped collection with its state.
struct MappingRow {
	std::string source; // db.collection as declared
	std::string db;
	std::string coll;
	Oid target = InvalidOid;
	std::string mapping_json;
	std::string mode = "upsert";
	std::string phase;
	std::string copy_last_id;        // BSON bytes of {_id: value}, empty when the copy has not started
	TimestampTz copy_started_at = 0; // when the copy in progress began (0: not recorded)
	int64 docs_copied = 0;
	int64 changes_applied = 0;
	// cut is the source time (t << 32 | i) at or before which no change touches the mapping (its
	// copy's start, or copy: false's operation time at map_collection); 0 when not set yet.
	uint64 cut = 0;
	// catch_up: a copy: false mapping whose changes from cut to the river's position are still to be read.
	bool catch_up = false;
};

// RiverRow is a river and its mappings.
struct RiverRow {
	std::string name;
	std::string id; // the river's immutable identity (river.id): a river created again gets another
	Oid owner = InvalidOid;
	std::string uri;
	RiverOptions options;
	bool enabled = true;
	std::string position_json; // empty: no position yet
	uint64 reached = 0;        // source time up to which everything is read (progress.reached)
	std::string phase;
	std::vector<MappingRow> mappings;
	// databases lists the source databases mapped whole (map_database).
	std::vector<std::string> databases;
	// digest changes whenever the river's declaration (uri, options, enabled, mappings) changes.
	std::string digest;
};

// LoadRiver reads river name from the catalog (42704 if it does not exist). Needs a transaction
// with a snapshot; connects to SPI itself.
RiverRow LoadRiver(const std::string &name);

// RiverDigest returns the current declaration digest of a river (empty when it is gone); the river's
// id is part of it.
std::string RiverDigest(const std::string &name);

// RequestedResyncs lists the river's collections whose resync was asked for and has not begun to copy
// (phase 'resync', no copy start): a worker that has them in another phase must reload.
std::vector<std::string> RequestedResyncs(const std::string &name);

// LauncherEntry is what the launcher needs to run a river.
struct LauncherEntry {
	std::string name;
	std::string id;
	Oid owner = InvalidOid;
	bool runnable = false; // enabled and not stopped by an error
	// The owner's role: its name (empty: the role does not exist any more, dropped from another
	// database) and whether it may log in (the worker logs in as it).
	std::string owner_name;
	bool owner_can_login = false;
};

// ListRivers lists every river for the launcher.
std::vector<LauncherEntry> ListRivers();

} // namespace mongo_river::catalog
