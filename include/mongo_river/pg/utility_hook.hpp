// utility_hook.hpp: the ProcessUtility_hook that guards DROP EXTENSION mongo_river and DROP ROLE of
// a river's owner, and moves rivers with REASSIGN OWNED.
#pragma once

namespace mongo_river::pg {

// InstallUtilityHook chains our ProcessUtility_hook in front of the current one (from _PG_init).
void InstallUtilityHook();

} // namespace mongo_river::pg
