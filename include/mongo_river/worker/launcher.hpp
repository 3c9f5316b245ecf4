// launcher.hpp: the static background worker that serves mongo_river.database.
#pragma once

namespace mongo_river::worker {

// RegisterLauncher registers the launcher with the postmaster; only valid while
// shared_preload_libraries is being processed.
void RegisterLauncher();

} // namespace mongo_river::worker

extern "C" {
// mongo_river_launcher_main is the launcher's entry point, called by the postmaster by name.
__attribute__((visibility("default"))) void mongo_river_launcher_main(unsigned long arg);
}
