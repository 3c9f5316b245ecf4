// checks.hpp: the SQL-level checks C functions share with the PL/pgSQL ones.
#pragma once

#include <string>

namespace mongo_river::api {

// RequireRiverOwner raises what mongo_river_internal._owned_river raises: 42501 unless the caller is an
// admin with the privileges of the river's owner, 22004 for a NULL river, 42704 for an unknown one.
void RequireRiverOwner(const char *fn, const std::string &river);

} // namespace mongo_river::api
