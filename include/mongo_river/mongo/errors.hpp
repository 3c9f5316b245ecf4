// errors.hpp: classified failures of the MongoDB source (PG-free).
//
// Every failure of a driver call becomes a SourceError: a mongo_river::Error (so the PostgreSQL
// boundary reports its SQLSTATE, message, detail and hint) that also says what the caller should do
// about it (Kind): retry with backoff, resync, or give up. Driver messages go in the detail with the
// URI's password (if any) replaced by "****".
#pragma once

#include <cstdint>
#include <string>

#include <mongoc/mongoc.h>

#include "mongo_river/error.hpp"

namespace mongo_river::mongo {

// SQLSTATEs the source uses beyond mongo_river::sqlstate.
namespace sourcestate {
inline constexpr const char *kUnableToConnect = "08001";   // sqlclient_unable_to_establish_sqlconnection
inline constexpr const char *kConnectionFailure = "08006"; // connection_failure
inline constexpr const char *kProtocolViolation = "08P01"; // protocol_violation: a malformed reply
inline constexpr const char *kInvalidAuthorization = "28000";
inline constexpr const char *kInvalidPassword = "28P01";
inline constexpr const char *kNotInPrerequisiteState = "55000"; // history lost, standalone server
inline constexpr const char *kDataException = "22000";          // malformed event, diff or token
inline constexpr const char *kSystemError = "58000";            // any other server-side failure
inline constexpr const char *kQueryCanceled = "57014";          // a wait on the source given up for an interrupt
} // namespace sourcestate

// SourceErrorKind says how a caller recovers from a SourceError.
enum class SourceErrorKind {
	kConnection,     // unreachable, timed out, primary stepped down, socket closed: retry with backoff
	kAuthentication, // bad credentials or mechanism: retrying will not help
	kHistoryLost,    // the stored position is no longer in the oplog (code 286/280/136): resync
	kNotReplicaSet,  // the server cannot serve change streams or an oplog
	kMalformed,      // a reply, event, diff or token we cannot read
	kServer,         // any other server or driver failure (the server's code is in the detail)
	kInterrupted,    // the process was asked to stop (InterruptRequested): a wait on the source gave up
};

// SourceError is a classified failure of the MongoDB source; ServerCode() is the server's (or the
// driver's) error code, 0 when there is none.
class SourceError : public Error {
public:
	SourceError(SourceErrorKind kind, int32_t server_code, std::string sqlstate, std::string message,
				std::string detail = {}, std::string hint = {});

	// Kind says how to recover; ServerCode is the server's error code (0 when none).
	SourceErrorKind Kind() const { return kind_; }
	int32_t ServerCode() const { return server_code_; }
	// Retryable is true when the same call may succeed later (network trouble, failover).
	bool Retryable() const { return kind_ == SourceErrorKind::kConnection; }

private:
	SourceErrorKind kind_;
	int32_t server_code_;
};

// IsResumableCode tells whether a server error code means "connection or primary trouble" (the
// change streams specification's resumable codes plus shutdown/step-down codes).
bool IsResumableCode(int32_t code);

// IsHistoryLostCode tells whether a server error code can mean the stored position is gone:
// ChangeStreamHistoryLost (286), ChangeStreamFatalError (280; ThrowDriverError also requires its
// message to speak of the resume token not being found), CappedPositionLost (136, an oplog tail
// overtaken by the capped collection) and 40576 (4.0's "resume point may no longer be in the oplog").
bool IsHistoryLostCode(int32_t code);

// ThrowDriverError throws the SourceError for a failed driver call (kInterrupted whenever
// InterruptRequested() holds, whatever the driver said): what names the operation
// (e.g. "cannot read collection \"db.c\""), error/reply are what the driver returned, and password
// (may be empty) is scrubbed from every text; client is the client that failed (a reply of its
// refused by the reply check explains a failed read; may be null).
[[noreturn]] void ThrowDriverError(const std::string &what, const bson_error_t &error, const bson_t *reply,
								   const std::string &password, const mongoc_client_t *client = nullptr);

// Scrub returns text with every occurrence of secret replaced by "****"; a secret of fewer than 4
// characters leaves text unchanged (replacing it would garble the text and reveal it).
std::string Scrub(std::string text, const std::string &secret);

} // namespace mongo_river::mongo
