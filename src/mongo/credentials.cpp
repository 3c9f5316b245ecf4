// credentials.cpp: passwords at the boundary to libmongoc; unknown URI options (PG-free).
#include "mongo_river/mongo/credentials.hpp"

#include <strings.h>

#include "mongo_river/error.hpp"
#include "mongo_river/mongo/errors.hpp"
#include "mongo_river/mongo/reader_thread.hpp"
#include "mongo_river/mongo/uri.hpp"

namespace mongo_river::mongo {

namespace {

mongoc_log_func_t installed_handler = mongoc_log_default_handler;
void *installed_data = nullptr;
// The handler the main thread's log lines go to now: the installed one, or UnknownUriOptions's
// collector while it parses. Read and written on the main thread only.
mongoc_log_func_t current_handler = mongoc_log_default_handler;
void *current_data = nullptr;

// Dispatch is libmongoc's log handler: a reader thread's lines are queued for the main thread
// (reader_thread.hpp: the installed handler may call elog), the main thread's go to the current
// handler.
void Dispatch(mongoc_log_level_t level, const char *domain, const char *message, void *) {
	if (OnReaderThread())
		QueueReaderLog(level, domain, message);
	else
		current_handler(level, domain, message, current_data);
}

// UseHandler sends the main thread's log lines to handler.
void UseHandler(mongoc_log_func_t handler, void *data) {
	current_handler = handler;
	current_data = data;
	mongoc_log_set_handler(Dispatch, nullptr);
}

// CollectUnknownOptions is a libmongoc log handler that keeps the names of unsupported URI options.
void CollectUnknownOptions(mongoc_log_level_t, const char *, const char *message, void *data) {
	static const std::string prefix = "Unsupported URI option \"";
	std::string text = message ? message : "";
	if (text.rfind(prefix, 0) != 0)
		return;
	std::string name = text.substr(prefix.size());
	if (!name.empty() && name.back() == '"')
		name.pop_back();
	static_cast<std::vector<std::string> *>(data)->push_back(name);
}

} // namespace

bool MechanismNeedsPassword(const mongoc_uri_t *uri) {
	const char *mechanism = mongoc_uri_get_auth_mechanism(uri);
	if (!mechanism)
		return mongoc_uri_get_username(uri) != nullptr;
	for (const char *without : {"MONGODB-X509", "GSSAPI", "MONGODB-AWS"}) {
		if (strcasecmp(mechanism, without) == 0)
			return false;
	}
	return true;
}

void RequirePassword(const mongoc_uri_t *uri, const std::string &redacted, const std::string &hint_extra) {
	if (!MechanismNeedsPassword(uri))
		return;
	const char *password = mongoc_uri_get_password(uri);
	if (password && *password)
		return;
	const char *mechanism = mongoc_uri_get_auth_mechanism(uri);
	const char *user = mongoc_uri_get_username(uri);
	throw SourceError(
		SourceErrorKind::kAuthentication, 0, sqlstate::kInvalidParameterValue,
		"MongoDB URI \"" + redacted + "\" names user \"" + (user ? user : "") + "\" but gives no password",
		std::string("Its authentication mechanism (") + (mechanism ? mechanism : "SCRAM, the default") +
			") needs a password.",
		"Give the password with a foreign server and user mapping (CREATE USER MAPPING ... OPTIONS (user, "
		"password); the river's URI is then 'server:<name>'), in a password_file (superuser only), or in "
		"the URI; MONGODB-X509 and GSSAPI need none." +
			hint_extra);
}

void ApplyCredentials(mongoc_uri_t *uri, const Credentials &credentials) {
	if (credentials.user && !mongoc_uri_set_username(uri, credentials.user->c_str()))
		throw Error(sqlstate::kInvalidParameterValue, "the user name from the " + credentials.origin + " is not valid",
					"libmongoc refused it (it must be UTF-8).");
	if (credentials.password && !mongoc_uri_set_password(uri, credentials.password->c_str()))
		throw Error(sqlstate::kInvalidParameterValue, "the password from the " + credentials.origin + " is not valid",
					"libmongoc refused it (it must be UTF-8).");
}

std::vector<std::string> UnknownUriOptions(const std::string &uri) {
	std::vector<std::string> unknown;
	UseHandler(CollectUnknownOptions, &unknown);
	try {
		ParseUri(uri);
	} catch (...) {
		UseHandler(installed_handler, installed_data);
		throw;
	}
	UseHandler(installed_handler, installed_data);
	return unknown;
}

void RequireKnownOptions(const std::string &uri, const std::string &where) {
	std::vector<std::string> unknown = UnknownUriOptions(uri);
	if (unknown.empty())
		return;
	std::string names;
	for (const std::string &name : unknown)
		names += (names.empty() ? "\"" : ", \"") + name + "\"";
	throw Error(sqlstate::kInvalidParameterValue,
				where + " has unknown option" + (unknown.size() > 1 ? "s " : " ") + names,
				"libmongoc does not support " + std::string(unknown.size() > 1 ? "them" : "it") +
					" (option names are case-insensitive).",
				"Remove or correct it; the options are listed in MongoDB's connection string documentation.");
}

void SetLogHandler(mongoc_log_func_t handler, void *data) {
	installed_handler = handler;
	installed_data = data;
	UseHandler(handler, data);
}

} // namespace mongo_river::mongo
