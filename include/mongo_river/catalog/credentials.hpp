// credentials.hpp: where a river's connection comes from: its URI, or a foreign server of wrapper
// mongo_river ('server:<name>') with the river owner's user mapping; plus its password_file.
#pragma once

#include <memory>
#include <string>

#include "mongo_river/mongo/credentials.hpp"
#include "mongo_river/mongo/source.hpp"
#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::catalog {

// kServerPrefix starts a river's URI that names a foreign server instead of a MongoDB URI.
inline constexpr const char *kServerPrefix = "server:";

// Connection is what a river connects with: a MongoDB URI (never holding the mapping's password)
// and the credentials that replace the URI's own.
struct Connection {
	Oid owner = InvalidOid;
	std::string uri;
	mongo::Credentials credentials;
};

// IsServerUri tells whether a river's URI names a foreign server ('server:<name>').
bool IsServerUri(const std::string &uri);

// ResolveConnection turns a river's stored URI and password_file into a Connection for owner: a
// server's URI option and the owner's user mapping (GetUserMapping, which falls back to PUBLIC),
// read only now; a password_file's first line. Needs a transaction.
Connection ResolveConnection(Oid owner, const std::string &uri, const std::string &password_file);

// RiverConnection loads river's owner, URI and password_file (SPI) and resolves them.
Connection RiverConnection(const std::string &river);

// kRiverPrefix starts a reference to a river's connection ('river:<name>'): what the SQL functions
// hand to _infer and _list_collections instead of a URI, so that no password passes through SQL.
inline constexpr const char *kRiverPrefix = "river:";

// OpenSourceFor opens the Source of a river reference ('river:<name>': the river's own connection;
// the calling role needs the privileges of the river's owner) or of a plain MongoDB URI.
std::unique_ptr<mongo::Source> OpenSourceFor(const std::string &uri_or_river);

struct RiverRow;
// OpenRiverSource opens the Source of a loaded river.
std::unique_ptr<mongo::Source> OpenRiverSource(const RiverRow &river);

// OpenSource builds the Source of a Connection (the boundary checks of mongo::Source apply).
std::unique_ptr<mongo::Source> OpenSource(const Connection &connection);

} // namespace mongo_river::catalog
