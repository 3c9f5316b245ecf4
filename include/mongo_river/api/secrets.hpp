// secrets.hpp: keeping passwords out of the server log.
#pragma once

namespace mongo_river::api {

// InstallLogFilter installs an emit_log_hook that hides the STATEMENT: line of any message whose
// statement carries a MongoDB URI with a password (a failing create_river would echo it).
void InstallLogFilter();

} // namespace mongo_river::api
