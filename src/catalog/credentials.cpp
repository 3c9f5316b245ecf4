// credentials.cpp: a river's connection from its URI or foreign server, user mapping and
// password_file; the wrapper's validator; the checks create_river and alter_river make.
#include "mongo_river/catalog/credentials.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/catalog/river.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mongo/uri.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/spi.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "foreign/foreign.h"
#include "utils/acl.h"
#include "utils/builtins.h"
}

namespace mongo_river::catalog {

namespace {

// OptionValue returns the value of option name in a list of DefElem, or nullopt.
std::optional<std::string> OptionValue(List *options, const char *name) {
	ListCell *cell;
	foreach (cell, options) {
		DefElem *def = static_cast<DefElem *>(lfirst(cell));
		if (strcmp(def->defname, name) == 0)
			return std::string(defGetString(def));
	}
	return std::nullopt;
}

// ReadPasswordFile returns the first line of path (without its line end).
std::string ReadPasswordFile(const std::string &path) {
	std::ifstream file(path);
	if (!file)
		throw Error("58P01", "cannot read password_file \"" + path + "\"", std::strerror(errno),
					"The file must exist on the database server and be readable by its operating system user.");
	std::string line;
	std::getline(file, line);
	while (!line.empty() && (line.back() == '\r' || line.back() == '\n'))
		line.pop_back();
	if (line.empty())
		throw Error(sqlstate::kInvalidParameterValue, "password_file \"" + path + "\" holds no password",
					"Its first line is empty.", "Write the password on the file's first line.");
	return line;
}

} // namespace

bool IsServerUri(const std::string &uri) {
	return uri.rfind(kServerPrefix, 0) == 0;
}

Connection ResolveConnection(Oid owner, const std::string &uri, const std::string &password_file) {
	Connection connection;
	connection.owner = owner;
	if (IsServerUri(uri)) {
		std::string name = uri.substr(strlen(kServerPrefix));
		ForeignServer *server = pg::Call([&] { return GetForeignServerByName(name.c_str(), true); });
		if (!server)
			throw Error(sqlstate::kUndefinedObject, "foreign server \"" + name + "\" does not exist", {},
						"CREATE SERVER " + name + " FOREIGN DATA WRAPPER mongo_river OPTIONS (uri '...');");
		ForeignDataWrapper *wrapper = pg::Call([&] { return GetForeignDataWrapper(server->fdwid); });
		if (strcmp(wrapper->fdwname, "mongo_river") != 0)
			throw Error(sqlstate::kInvalidParameterValue,
						"foreign server \"" + name + "\" belongs to wrapper \"" + wrapper->fdwname + "\"", {},
						"A river names a server of FOREIGN DATA WRAPPER mongo_river.");
		// USAGE is checked at every connection, not only when the river is created or altered: a
		// REVOKE cuts the river off at its next connection (worker start, reconnect, sync_once,
		// verify, infer_mapping).
		AclResult acl = pg::Call([&] { return pg_foreign_server_aclcheck(server->serverid, owner, ACL_USAGE); });
		if (acl != ACLCHECK_OK)
			throw Error(sqlstate::kInsufficientPrivilege, "permission denied for foreign server \"" + name + "\"",
						"The river's owner needs USAGE on the server.",
						"GRANT USAGE ON FOREIGN SERVER " + name + " TO <owner>;");
		std::optional<std::string> server_uri = OptionValue(server->options, "uri");
		if (!server_uri)
			throw Error(sqlstate::kInvalidParameterValue, "foreign server \"" + name + "\" has no uri option", {},
						"ALTER SERVER " + name + " OPTIONS (ADD uri 'mongodb://host:port/?replicaSet=rs0');");
		connection.uri = *server_uri;
		UserMapping *mapping = pg::Call([&] { return GetUserMapping(owner, server->serverid); });
		connection.credentials.user = OptionValue(mapping->options, "user");
		connection.credentials.password = OptionValue(mapping->options, "password");
		connection.credentials.origin = "user mapping of server \"" + name + "\"";
	} else {
		connection.uri = uri;
	}
	if (!password_file.empty()) {
		connection.credentials.password = ReadPasswordFile(password_file);
		connection.credentials.origin = "password_file";
	}
	return connection;
}

Connection RiverConnection(const std::string &river) {
	Oid owner;
	std::string uri, password_file;
	{
		pg::SpiConnection spi;
		if (pg::SpiExecute("SELECT owner::oid, uri, coalesce(options->>'password_file', '') FROM mongo_river.river"
						   " WHERE river = $1",
						   {{NAMEOID, pg::NameDatum(river)}}, true) == 0)
			throw Error(sqlstate::kUndefinedObject, "river \"" + river + "\" does not exist", {},
						"SELECT river FROM mongo_river.rivers lists the rivers.");
		owner = DatumGetObjectId(*pg::SpiDatum(0, 1));
		uri = pg::SpiText(0, 2).value_or("");
		password_file = pg::SpiText(0, 3).value_or("");
	}
	return ResolveConnection(owner, uri, password_file);
}

std::unique_ptr<mongo::Source> OpenSourceFor(const std::string &uri_or_river) {
	if (uri_or_river.rfind(kRiverPrefix, 0) != 0)
		return OpenSource(Connection{InvalidOid, uri_or_river, {}});
	std::string river = uri_or_river.substr(strlen(kRiverPrefix));
	Connection connection = RiverConnection(river);
	Oid caller = pg::Call([] { return CallerOid(); });
	bool allowed = pg::Call([&] { return superuser_arg(caller) || has_privs_of_role(caller, connection.owner); });
	if (!allowed)
		throw Error(sqlstate::kInsufficientPrivilege, "must be owner of river \"" + river + "\"", {},
					"Ask a superuser or a member of the river's owner.");
	return OpenSource(connection);
}

std::unique_ptr<mongo::Source> OpenRiverSource(const RiverRow &river) {
	return OpenSource(ResolveConnection(river.owner, river.uri, river.options.password_file));
}

std::unique_ptr<mongo::Source> OpenSource(const Connection &connection) {
	return std::make_unique<mongo::Source>(connection.uri, connection.credentials);
}

} // namespace mongo_river::catalog
