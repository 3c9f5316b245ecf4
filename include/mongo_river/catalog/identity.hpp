// identity.hpp: who writes what. The catalog tables change only through mongo_river's code: its
// SQL functions (SECURITY DEFINER) and its C code, which writes catalog rows under the catalog
// owner's identity (admins hold no INSERT, UPDATE or DELETE on them). DDL on user tables made by
// those functions runs as the river's owner.
#pragma once

#include "mongo_river/pg/postgres.hpp"
#include "mongo_river/pg/transaction.hpp"

namespace mongo_river::catalog {

// AsCatalogOwner switches the current user to the owner of the catalog tables for its lifetime
// (SetUserIdAndSecContext, as a SECURITY DEFINER function does); it restores the previous one.
// A transaction abort restores it too. Its SQL runs with search_path = pg_catalog, pg_temp (a
// GucLevel): the caller's search_path (or the worker's owner's role setting) could otherwise put
// the owner's own now() or = before pg_catalog's, to run as the catalog's owner.
class AsCatalogOwner {
public:
	AsCatalogOwner();
	~AsCatalogOwner();
	AsCatalogOwner(const AsCatalogOwner &) = delete;
	AsCatalogOwner &operator=(const AsCatalogOwner &) = delete;

private:
	Oid saved_user_ = InvalidOid;
	int saved_context_ = 0;
	pg::GucLevel settings_{"pg_catalog, pg_temp"};
};

// AsRole switches the current user to role (a river's owner) for its lifetime, like AsCatalogOwner:
// the C entry points that write a river's user tables (sync_once, retry_rejects, verify with repair)
// run as the river's owner, so that a superuser's call never runs the owner's triggers with the
// superuser's rights. AsCatalogOwner nests inside it for catalog writes. What the owner's code
// sets (search_path, work_mem, ...) is undone when it ends, and before each commit of sync_once
// (a GucLevel and an OwnerCodeScope): it never stays in the caller's session.
class AsRole {
public:
	explicit AsRole(Oid role);
	~AsRole();
	AsRole(const AsRole &) = delete;
	AsRole &operator=(const AsRole &) = delete;

private:
	Oid saved_user_ = InvalidOid;
	int saved_context_ = 0;
	pg::GucLevel settings_;
	pg::OwnerCodeScope owner_code_;
};

// The role a call acts for. Every public function of schema mongo_river records, when called, the
// role that called it: GetUserId() at its boundary, i.e. the session's role or, inside a SECURITY
// DEFINER function, that function's owner (never the outer session's role: a definer function
// acts with its owner's rights only). A call made by mongo_river's own code acts for the role of
// the call that made it. The worker records the river's owner.
//
// PushCaller records role (InvalidOid: the current user, as above) and returns the depth to give
// PopCaller, which also restores the acting owner (_act_for) of the time of the push. Both are
// plain C (PG_TRY frames); CallerScope is the same for C++ code.
int PushCaller(Oid role);
void PopCaller(int depth);

// CallerOid returns the role the running call acts for: the innermost record when the current
// user is that role or the catalog's owner (our SECURITY DEFINER code), else the current user.
// Our SECURITY DEFINER code with no record (an internal function called directly) raises 42501.
Oid CallerOid();

class CallerScope {
public:
	explicit CallerScope(Oid role);
	~CallerScope();
	CallerScope(const CallerScope &) = delete;
	CallerScope &operator=(const CallerScope &) = delete;

private:
	int depth_ = 0;
};

// InstallOwnerUtilityHook installs the ProcessUtility hook that runs utility statements (CREATE
// TABLE, DROP TABLE, CREATE SCHEMA, ...) issued inside mongo_river's SECURITY DEFINER functions as
// the owner of the river they act for (set by _act_for).
void InstallOwnerUtilityHook();

} // namespace mongo_river::catalog
