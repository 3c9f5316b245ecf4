// uri.hpp: MongoDB connection strings, checked with libmongoc's own parser (PG-free).
#pragma once

#include <string>

#include "mongo_river/mongo/handles.hpp"

namespace mongo_river::mongo {

// ParseUri parses uri with libmongoc; a malformed one throws Error 22023 naming the problem but
// never the password.
Uri ParseUri(const std::string &uri);

// RedactUri returns uri with its password (if any) replaced by "****", for messages and views.
std::string RedactUri(const std::string &uri);

} // namespace mongo_river::mongo
