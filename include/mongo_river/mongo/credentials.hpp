// credentials.hpp: the user name and password a river connects with, and the checks made where
// they are handed to libmongoc (PG-free).
//
// A river's password comes from its URI, from a password_file (superuser only) or from the river
// owner's user mapping of a foreign server. Whatever the source, no NULL or empty password and no
// half-parsed URI ever reaches a mongoc_client_t: libmongoc 1.23's SCRAM step calls strlen on a
// NULL password (a segfault that restarts the whole PostgreSQL cluster).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <mongoc/mongoc.h>

#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

// Credentials are a user name and/or password that replace the URI's own (each only when set).
struct Credentials {
	std::optional<std::string> user;
	std::optional<std::string> password;
	// origin names where they came from, for messages ("password_file", "user mapping").
	std::string origin;
};

// MechanismNeedsPassword tells whether uri's auth mechanism needs a password: the default
// (SCRAM, when a user name is given), SCRAM-SHA-1, SCRAM-SHA-256, PLAIN and MONGODB-CR do;
// MONGODB-X509, GSSAPI and MONGODB-AWS do not.
bool MechanismNeedsPassword(const mongoc_uri_t *uri);

// RequirePassword throws SourceError kAuthentication, 22023, (with a hint naming the ways to give one) when uri's auth
// mechanism needs a password and uri has none or an empty one; river names the river in messages.
void RequirePassword(const mongoc_uri_t *uri, const std::string &redacted, const std::string &hint_extra = {});

// ApplyCredentials sets credentials' user and password on uri (each only when set).
void ApplyCredentials(mongoc_uri_t *uri, const Credentials &credentials);

// UnknownUriOptions parses uri with libmongoc (nothing is connected) and returns the names of the
// options libmongoc warned it does not support (lower case, as libmongoc reports them). A malformed
// URI throws like ParseUri.
std::vector<std::string> UnknownUriOptions(const std::string &uri);

// RequireKnownOptions throws Error 22023 naming the options of uri libmongoc does not support;
// where names the URI in the message (never with its password).
void RequireKnownOptions(const std::string &uri, const std::string &where);

// SetLogHandler installs libmongoc's log handler and remembers it, so that UnknownUriOptions can
// collect the parser's warnings and restore it afterwards.
void SetLogHandler(mongoc_log_func_t handler, void *data);

} // namespace mongo_river::mongo
