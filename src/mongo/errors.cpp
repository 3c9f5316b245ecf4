// errors.cpp: classify libmongoc failures into SourceErrors with a SQLSTATE and a hint.
#include "mongo_river/mongo/errors.hpp"

#include <utility>

#include "mongo_river/mongo/stream_guard.hpp"

namespace mongo_river::mongo {

namespace {

// HasErrorLabel tells whether a server reply carries label in its errorLabels array.
bool HasErrorLabel(const bson_t *reply, const char *label) {
	bson_iter_t iter;
	bson_iter_t labels;
	if (!reply || !bson_iter_init_find(&iter, reply, "errorLabels") || !BSON_ITER_HOLDS_ARRAY(&iter) ||
		!bson_iter_recurse(&iter, &labels))
		return false;
	while (bson_iter_next(&labels)) {
		if (BSON_ITER_HOLDS_UTF8(&labels) && std::string(bson_iter_utf8(&labels, nullptr)) == label)
			return true;
	}
	return false;
}

// ServerCode returns the server's error code: the driver's code when the error came from the server
// (error API 2: MONGOC_ERROR_SERVER; legacy: MONGOC_ERROR_QUERY), else the reply's "code", else 0.
int32_t ServerCode(const bson_error_t &error, const bson_t *reply) {
	if (error.domain == MONGOC_ERROR_SERVER || error.domain == MONGOC_ERROR_QUERY ||
		error.domain == MONGOC_ERROR_WRITE_CONCERN)
		return static_cast<int32_t>(error.code);
	bson_iter_t iter;
	if (reply && bson_iter_init_find(&iter, reply, "code") && BSON_ITER_HOLDS_INT(&iter))
		return static_cast<int32_t>(bson_iter_as_int64(&iter));
	return 0;
}

} // namespace

SourceError::SourceError(SourceErrorKind kind, int32_t server_code, std::string sqlstate, std::string message,
						 std::string detail, std::string hint)
	: Error(std::move(sqlstate), std::move(message), std::move(detail), std::move(hint)), kind_(kind),
	  server_code_(server_code) {}

bool IsResumableCode(int32_t code) {
	switch (code) {
	case 6:     // HostUnreachable
	case 7:     // HostNotFound
	case 63:    // StaleShardVersion
	case 89:    // NetworkTimeout
	case 91:    // ShutdownInProgress
	case 133:   // FailedToSatisfyReadPreference
	case 150:   // StaleEpoch
	case 189:   // PrimarySteppedDown
	case 234:   // RetryChangeStream
	case 262:   // ExceededTimeLimit
	case 9001:  // SocketException
	case 10107: // NotWritablePrimary
	case 11600: // InterruptedAtShutdown
	case 11602: // InterruptedDueToReplStateChange
	case 13388: // StaleConfig
	case 13435: // NotPrimaryNoSecondaryOk
	case 13436: // NotPrimaryOrSecondary
		return true;
	default:
		return false;
	}
}

bool IsHistoryLostCode(int32_t code) {
	return code == 286 || code == 280 || code == 136 || code == 40576;
}

std::string Scrub(std::string text, const std::string &secret) {
	// A password of fewer than 4 characters is not replaced: replacing every "a" of a message would
	// garble it ("No suit****ble servers") and show the reader what the password is. libmongoc's
	// messages do not quote the password; this only catches the rare one that does.
	if (secret.size() < 4)
		return text;
	for (std::string::size_type at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 4))
		text.replace(at, secret.size(), "****");
	return text;
}

void ThrowDriverError(const std::string &what, const bson_error_t &error, const bson_t *reply,
					  const std::string &password, const mongoc_client_t *client) {
	const int32_t code = ServerCode(error, reply);
	std::string detail = Scrub(error.message, password);
	if (code != 0)
		detail += " (server error code " + std::to_string(code) + ")";
	if (InterruptRequested())
		throw SourceError(SourceErrorKind::kInterrupted, code, sourcestate::kQueryCanceled,
						  what + ": interrupted while waiting for the MongoDB server", detail);

	// 280 (ChangeStreamFatalError) is history lost only as "the resume token was not found".
	const bool history_lost = IsHistoryLostCode(code) &&
							  (code != 280 || std::string(error.message).find("resume token") != std::string::npos);
	if (history_lost)
		throw SourceError(SourceErrorKind::kHistoryLost, code, sourcestate::kNotInPrerequisiteState,
						  what + ": the stored position is no longer in the source's oplog", detail,
						  "The river must copy its collections again (resync); a larger oplog (replSetResizeOplog) "
						  "keeps history longer.");
	// A refused reply explains a failed read, whatever libmongoc then calls it (a stream or server
	// selection error; an authentication error when it was a SCRAM step's reply).
	const bool authentication = error.domain == MONGOC_ERROR_CLIENT && error.code == MONGOC_ERROR_CLIENT_AUTHENTICATE;
	if (error.domain == MONGOC_ERROR_SERVER_SELECTION || error.domain == MONGOC_ERROR_STREAM ||
		(authentication && code == 0)) {
		const std::string malformed = ReplyFailure(client);
		if (!malformed.empty())
			throw SourceError(SourceErrorKind::kConnection, code, sourcestate::kProtocolViolation,
							  what + ": the MongoDB server sent a " + malformed,
							  "The connection was closed before libmongoc read the reply, so libmongoc reports only a "
							  "failed read: " +
								  detail,
							  "The connection was closed before the driver read the reply; the river reconnects and "
							  "reads again. A source that keeps doing this is broken, or is not a MongoDB server.");
		if (!authentication)
			throw SourceError(
				SourceErrorKind::kConnection, code,
				error.domain == MONGOC_ERROR_SERVER_SELECTION ? sourcestate::kUnableToConnect
															  : sourcestate::kConnectionFailure,
				what + ": cannot reach the MongoDB server", detail,
				"Check that the hosts in the river's URI are up and reachable from the PostgreSQL server.");
	}
	if (authentication || code == 18)
		throw SourceError(SourceErrorKind::kAuthentication, code, sourcestate::kInvalidPassword,
						  what + ": MongoDB authentication failed", detail,
						  "Check the user name, password (or password_file) and authSource of the river's URI.");
	if (IsResumableCode(code) || HasErrorLabel(reply, "ResumableChangeStreamError") ||
		HasErrorLabel(reply, "NetworkError"))
		throw SourceError(SourceErrorKind::kConnection, code, sourcestate::kConnectionFailure,
						  what + ": connection to the MongoDB primary was lost", detail,
						  "The river retries; this is normal during a failover.");
	if (code == 13)
		throw SourceError(
			SourceErrorKind::kServer, code, sqlstate::kInsufficientPrivilege,
			what + ": not authorized on the MongoDB server", detail,
			"Grant the river's MongoDB user the read role on the mapped databases (and on local for capture "
			"'oplog').");
	// A reply libmongoc could not read: its framing (protocol_violation) or a document in it.
	if (error.domain == MONGOC_ERROR_PROTOCOL || error.domain == MONGOC_ERROR_BSON)
		throw SourceError(SourceErrorKind::kMalformed, code,
						  error.domain == MONGOC_ERROR_PROTOCOL ? sourcestate::kProtocolViolation
																: sourcestate::kDataException,
						  what + ": unreadable reply from the MongoDB server", detail);
	throw SourceError(SourceErrorKind::kServer, code, sourcestate::kSystemError, what + ": MongoDB reported an error",
					  detail);
}

} // namespace mongo_river::mongo
