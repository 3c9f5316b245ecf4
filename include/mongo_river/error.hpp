// error.hpp: the exception type PG-free code throws; the PostgreSQL boundary turns it into an ERROR.
#pragma once

#include <stdexcept>
#include <string>

namespace mongo_river {

// Error is a user-facing failure with a SQLSTATE (five characters, e.g. "22023"), a message that
// names the offending thing, and optional detail and hint. It carries no PostgreSQL types so that
// mapping/, mongo/ and convert/ can throw it without including PostgreSQL headers.
class Error : public std::runtime_error {
public:
	Error(std::string sqlstate, std::string message, std::string detail = {}, std::string hint = {});

	const std::string &Sqlstate() const { return sqlstate_; }
	const std::string &Message() const { return message_; }
	const std::string &Detail() const { return detail_; }
	const std::string &Hint() const { return hint_; }

private:
	std::string sqlstate_;
	std::string message_;
	std::string detail_;
	std::string hint_;
};

// Sqlstate names the codes PG-free code uses, so they are spelled once.
namespace sqlstate {
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kDatatypeMismatch = "42804";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kUndefinedTable = "42P01";
inline constexpr const char *kUndefinedColumn = "42703";
inline constexpr const char *kDuplicateColumn = "42701";
inline constexpr const char *kInsufficientPrivilege = "42501";
inline constexpr const char *kNumericValueOutOfRange = "22003";
inline constexpr const char *kInvalidTextRepresentation = "22P02";
inline constexpr const char *kUntranslatableCharacter = "22P05";
inline constexpr const char *kConnectionFailure = "08006";
inline constexpr const char *kConnectionException = "08000";
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kInternalError = "XX000";
inline constexpr const char *kInvalidTransactionTermination = "2D000";
} // namespace sqlstate

} // namespace mongo_river
