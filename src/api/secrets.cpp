// secrets.cpp: the foreign data wrapper's validator, the connection check of the river catalog's
// trigger, _caller(), and the log filter that keeps URIs with passwords out of STATEMENT: lines.
#include <string>

#include "mongo_river/api/secrets.hpp"
#include "mongo_river/catalog/credentials.hpp"
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/mongo/uri.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/datum.hpp"
#include "mongo_river/pg/mongoc_runtime.hpp"

extern "C" {
#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/elog.h"
}

using mongo_river::Error;
namespace sqlstate = mongo_river::sqlstate;

namespace {

emit_log_hook_type previous_emit_log_hook = nullptr;

// CarriesPassword tells whether text holds a MongoDB URI with a password, or a user mapping's.
bool CarriesPassword(const char *text) {
	if (!text)
		return false;
	std::string s(text);
	for (const char *scheme : {"mongodb://", "mongodb+srv://"}) {
		for (std::string::size_type at = s.find(scheme); at != std::string::npos; at = s.find(scheme, at + 1)) {
			std::string rest = s.substr(at, 2048);
			if (mongo_river::mongo::RedactUri(rest) != rest)
				return true;
		}
	}
	return false;
}

// HideStatementsWithPasswords is the emit_log_hook: a message whose statement carries a password
// is logged without its STATEMENT: line, and one whose context does (a call made in a DO block or
// a function: 'SQL statement "SELECT mongo_river.create_river(...)"') without its CONTEXT: line.
// It never raises an error.
void HideStatementsWithPasswords(ErrorData *edata) {
	if (!edata->hide_stmt && debug_query_string && CarriesPassword(debug_query_string))
		edata->hide_stmt = true;
	if (!edata->hide_ctx && edata->context && CarriesPassword(edata->context))
		edata->hide_ctx = true;
	if (previous_emit_log_hook)
		previous_emit_log_hook(edata);
}

// CheckServerUri checks a foreign server's uri option: a MongoDB URI with no password (credentials
// belong in user mappings) and no unknown option.
void CheckServerUri(const std::string &uri) {
	if (mongo_river::mongo::RedactUri(uri) != uri)
		throw Error(sqlstate::kInvalidParameterValue, "the uri option of a mongo_river server must hold no password",
					{},
					"Put user and password in a user mapping: CREATE USER MAPPING FOR role SERVER name "
					"OPTIONS (user '...', password '...');");
	mongo_river::mongo::RequireKnownOptions(uri, "the server's MongoDB URI");
}

} // namespace

namespace mongo_river::api {

void InstallLogFilter() {
	previous_emit_log_hook = emit_log_hook;
	emit_log_hook = HideStatementsWithPasswords;
}

} // namespace mongo_river::api

// mongo_river_fdw_validator(options text[], catalog oid) checks the options of the wrapper
// mongo_river, its servers (uri) and user mappings (user, password).
MONGO_RIVER_FUNCTION(mongo_river_fdw_validator) {
	using namespace mongo_river;
	return pg::Guard([&] {
		Datum options_datum = PG_GETARG_DATUM(0);
		Oid catalog = PG_GETARG_OID(1);
		List *options = pg::Call([&] { return untransformRelOptions(options_datum); });
		const char *what = catalog == ForeignServerRelationId        ? "server"
						   : catalog == UserMappingRelationId        ? "user mapping"
						   : catalog == ForeignDataWrapperRelationId ? "foreign data wrapper"
																	 : "foreign table";
		if (catalog != ForeignServerRelationId && catalog != UserMappingRelationId && options != NIL)
			throw Error("HV00D", std::string("a mongo_river ") + what + " takes no options", {},
						"Options go on the server (uri) and on user mappings (user, password).");
		ListCell *cell;
		foreach (cell, options) {
			DefElem *def = static_cast<DefElem *>(lfirst(cell));
			std::string name = def->defname;
			std::string value = pg::Call([&] { return defGetString(def); });
			if (catalog == ForeignServerRelationId) {
				if (name != "uri")
					throw Error("HV00D", "unknown option \"" + name + "\" of a mongo_river server", {},
								"A mongo_river server takes one option: uri.");
				CheckServerUri(value);
			} else {
				if (name != "user" && name != "password")
					throw Error("HV00D", "unknown option \"" + name + "\" of a mongo_river user mapping", {},
								"A mongo_river user mapping takes the options user and password.");
				if (value.empty())
					throw Error(sqlstate::kInvalidParameterValue,
								"the " + name + " of a user mapping must not be empty", {},
								"Leave the option out instead.");
			}
		}
		PG_RETURN_VOID();
	});
}

// mongo_river_check_connection(owner regrole, uri text, password_file text) checks what a river
// would connect with, without connecting: the server (of wrapper mongo_river, USAGE granted to the
// owner) and the owner's user mapping, or the URI; and that a password comes from somewhere when
// the auth mechanism needs one. The river catalog's trigger calls it.
MONGO_RIVER_FUNCTION(mongo_river_check_connection) {
	using namespace mongo_river;
	return pg::Guard([&] {
		Oid owner = PG_GETARG_OID(0);
		std::string uri = pg::TextArg(PG_GETARG_DATUM(1));
		std::string password_file = pg::TextArg(PG_GETARG_DATUM(2));
		pg::EnsureMongocInitialized(); // libmongoc's parser warnings go to the server log
		catalog::Connection connection = catalog::ResolveConnection(owner, uri, password_file);
		mongo::Uri parsed = mongo::ParseUri(connection.uri);
		mongo::ApplyCredentials(parsed.get(), connection.credentials);
		mongo::RequirePassword(parsed.get(), mongo::RedactUri(connection.uri));
		PG_RETURN_VOID();
	});
}

// mongo_river_check_uri_options(uri text) refuses a URI with options libmongoc does not support
// (a server reference is checked by its validator).
MONGO_RIVER_FUNCTION(mongo_river_check_uri_options) {
	using namespace mongo_river;
	return pg::Guard([&] {
		std::string uri = pg::TextArg(PG_GETARG_DATUM(0));
		if (!catalog::IsServerUri(uri))
			mongo::RequireKnownOptions(uri, "MongoDB URI \"" + mongo::RedactUri(uri) + "\"");
		PG_RETURN_VOID();
	});
}

// mongo_river_caller() returns the role the running call acts for (catalog::CallerOid: the role
// that called the public mongo_river function, as recorded at its boundary).
MONGO_RIVER_FUNCTION(mongo_river_caller) {
	using namespace mongo_river;
	return pg::Guard([&] {
		Oid caller = pg::Call([] { return catalog::CallerOid(); });
		return pg::Call([&] { return DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(caller, false))); });
	});
}
