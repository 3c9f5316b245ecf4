// error.cpp: mongo_river::Error, the PG-free user-facing exception.
#include "mongo_river/error.hpp"

#include <utility>

namespace mongo_river {

Error::Error(std::string sqlstate, std::string message, std::string detail, std::string hint)
	: std::runtime_error(message), sqlstate_(std::move(sqlstate)), message_(std::move(message)),
	  detail_(std::move(detail)), hint_(std::move(hint)) {
	if (sqlstate_.size() != 5)
		sqlstate_ = sqlstate::kInternalError;
}

} // namespace mongo_river
