// identity.hpp: who writes what. The catalog tables change only through mongo_river's code: its
// SQL functions (SECURITY DEFINER) and its C code, which writes catalog rows under the catalog
// owner's identity (admins hold no INSERT, UPDATE or DELETE on them). DDL on user tables made by
// those functions runs as the river's owner.
#pragma once

#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::catalog {

// AsCatalogOwner switches the current user to the owner of the catalog tables for its lifetime
// (SetUserIdAndSecContext, as a SECURITY DEFINER function does); it restores the previous one.
// A transaction abort restores it too.
class AsCatalogOwner {
public:
	AsCatalogOwner();
	~AsCatalogOwner();
	AsCatalogOwner(const AsCatalogOwner &) = delete;
	AsCatalogOwner &operator=(const AsCatalogOwner &) = delete;

private:
	Oid saved_user_ = InvalidOid;
	int saved_context_ = 0;
};

// AsRole switches the current user to role (a river's owner) for its lifetime, like AsCatalogOwner:
// the C entry points that write a river's user tables (sync_once, retry_rejects, verify with repair)
// run as the river's owner, so that a superuser's call never runs the owner's triggers with the
// superuser's rights. AsCatalogOwner nests inside it for catalog writes.
class AsRole {
public:
	explicit AsRole(Oid role);
	~AsRole();
	AsRole(const AsRole &) = delete;
	AsRole &operator=(const AsRole &) = delete;

private:
	Oid saved_user_ = InvalidOid;
	int saved_context_ = 0;
};

// InstallOwnerUtilityHook installs the ProcessUtility hook that runs utility statements (CREATE
// TABLE, DROP TABLE, CREATE SCHEMA, ...) issued inside mongo_river's SECURITY DEFINER functions as
// the owner of the river they act for (set by _act_for).
void InstallOwnerUtilityHook();

} // namespace mongo_river::catalog
