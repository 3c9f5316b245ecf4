// utility_hook.cpp: the ProcessUtility_hook that guards DROP EXTENSION mongo_river and keeps
// rivers' owners real roles that can log in.
// DROP EXTENSION: without CASCADE (DROP_RESTRICT) it refuses while rivers exist, since dropping the
// extension silently removes their declarations and positions. With CASCADE (or when no river
// exists) it names the pg_cron jobs that call mongo_river functions, then ends every river worker
// of the database and waits for it (each logs one "stopped" line), so that no worker touches the
// catalog being dropped. The rivers' tables are not members of the extension: they are never
// dropped with it.
// DROP ROLE of a role owning rivers in this database is refused (2BP01): the rivers' owner column
// is no dependency PostgreSQL knows. REASSIGN OWNED moves the rivers too, to a role that can log in.
#include "mongo_river/pg/utility_hook.hpp"

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/pg/boundary.hpp"
#include "mongo_river/pg/spi.hpp"
#include "mongo_river/worker/signals.hpp"

extern "C" {
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace mongo_river::pg {

namespace {

constexpr const char *kExtension = "mongo_river";

// kStopTimeoutMs bounds the wait for the workers to exit before the extension is dropped.
constexpr int kStopTimeoutMs = 10000;

ProcessUtility_hook_type previous_hook = nullptr;

// DropsOurExtension tells whether parsetree is a DROP EXTENSION whose list names mongo_river and
// mongo_river exists in this database (with IF EXISTS it may not: then there is nothing to guard).
bool DropsOurExtension(Node *parsetree) {
	if (!parsetree || !IsA(parsetree, DropStmt))
		return false;
	auto *drop = reinterpret_cast<DropStmt *>(parsetree);
	if (drop->removeType != OBJECT_EXTENSION)
		return false;
	ListCell *cell;
	foreach (cell, drop->objects) {
		Node *name = static_cast<Node *>(lfirst(cell));
		if (IsA(name, String) && strcmp(strVal(name), kExtension) == 0)
			return OidIsValid(get_extension_oid(kExtension, true));
	}
	return false;
}

// NoticeCronJobs names the pg_cron jobs (if pg_cron is installed in this database) whose command
// calls a mongo_river function: they would fail from now on.
void NoticeCronJobs() {
	SpiExecute("SELECT to_regclass('cron.job') IS NOT NULL", {}, true);
	if (SpiText(0, 1).value_or("f") != "t")
		return;
	if (SpiExecute("SELECT string_agg(format('%s (jobid %s): %s', coalesce(jobname, '-'), jobid, command), '; '"
				   " ORDER BY jobid), string_agg(jobid::text, ', ' ORDER BY jobid)"
				   " FROM cron.job WHERE command ~* 'mongo_river\\s*\\.'",
				   {}, true) == 0)
		return;
	std::optional<std::string> jobs = SpiText(0, 1);
	if (!jobs)
		return;
	std::string ids = SpiText(0, 2).value_or("");
	Call([&] {
		ereport(NOTICE, (errmsg("DROP EXTENSION mongo_river: pg_cron jobs call mongo_river functions and will fail: %s",
								jobs->c_str()),
						 errhint("Remove them: SELECT cron.unschedule(jobid) FROM cron.job WHERE jobid IN (%s);",
								 ids.c_str())));
	});
}

// BeforeDrop runs before DROP EXTENSION mongo_river: refuses a RESTRICT drop while rivers exist,
// otherwise names the pg_cron jobs that call us and ends the river workers.
void BeforeDrop(DropBehavior behavior) {
	{
		SpiConnection spi;
		SpiExecute("SELECT to_regclass('mongo_river.river') IS NOT NULL", {}, true);
		if (SpiText(0, 1).value_or("f") == "t") {
			SpiExecute("SELECT count(*), string_agg(format('%I', river), ', ' ORDER BY river) FROM mongo_river.river",
					   {}, true);
			std::string count = SpiText(0, 1).value_or("0");
			if (behavior == DROP_RESTRICT && count != "0")
				throw Error("2BP01",
							"cannot drop extension mongo_river because " + count +
								" river(s) exist: " + SpiText(0, 2).value_or(""),
							"Dropping the extension removes the rivers' declarations, positions and rejects "
							"(their tables stay).",
							"Drop the rivers first (SELECT mongo_river.drop_river(river) FROM mongo_river.river), or "
							"use DROP EXTENSION mongo_river CASCADE.");
		}
		NoticeCronJobs();
	}
	worker::StopProcesses(worker::FindRiverWorkers(""), "DROP EXTENSION mongo_river", "a river worker", kStopTimeoutMs);
}

// ExtensionHere tells whether mongo_river exists in the current database (its catalog can be read).
bool ExtensionHere() {
	return Call([] { return OidIsValid(get_extension_oid(kExtension, true)); });
}

// RoleName returns role's name.
std::string RoleName(Oid role) {
	return Call([&] { return GetUserNameFromId(role, false); });
}

// QuotedRoleName returns role's name quoted as an identifier when needed (dave, "Dave"), for SQL
// in hints.
std::string QuotedRoleName(Oid role) {
	return Call([&] { return quote_identifier(GetUserNameFromId(role, false)); });
}

// RoleCanLogIn tells whether role exists and has LOGIN.
bool RoleCanLogIn(Oid role) {
	return Call([&] {
		HeapTuple tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
		if (!HeapTupleIsValid(tuple))
			return false;
		bool can_login = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple))->rolcanlogin;
		ReleaseSysCache(tuple);
		return can_login;
	});
}

// RiversOwnedBy returns the rivers of this database owned by role, read as the catalog's owner:
// the river table's row-level security may hide them from the caller.
std::vector<std::string> RiversOwnedBy(Oid role) {
	catalog::AsCatalogOwner as_catalog_owner;
	SpiConnection spi;
	uint64 rows = SpiExecute("SELECT river::text FROM mongo_river.river WHERE owner::oid = $1 ORDER BY river",
							 {{OIDOID, ObjectIdGetDatum(role)}}, true);
	std::vector<std::string> rivers;
	for (uint64 row = 0; row < rows; row++)
		rivers.push_back(SpiText(row, 1).value_or(""));
	return rivers;
}

// RiverList joins river names for a message: a, "B c".
std::string RiverList(const std::vector<std::string> &rivers) {
	std::string list;
	for (const std::string &river : rivers)
		list += (list.empty() ? "" : ", ") + std::string(Call([&] { return quote_identifier(river.c_str()); }));
	return list;
}

// BeforeDropRole refuses DROP ROLE of a role that owns rivers in this database (2BP01), as
// PostgreSQL refuses it for a role that owns tables: the rivers' workers log in as their owner.
// Missing roles are left to DROP ROLE itself (an error, or a NOTICE with IF EXISTS).
void BeforeDropRole(DropRoleStmt *stmt) {
	if (!ExtensionHere())
		return;
	ListCell *cell;
	foreach (cell, stmt->roles) {
		RoleSpec *spec = static_cast<RoleSpec *>(lfirst(cell));
		if (spec->roletype != ROLESPEC_CSTRING)
			continue; // DROP ROLE refuses CURRENT_USER and the like itself
		Oid role = Call([&] { return get_role_oid(spec->rolename, true); });
		if (!OidIsValid(role))
			continue;
		std::vector<std::string> rivers = RiversOwnedBy(role);
		if (rivers.empty())
			continue;
		std::string name = QuotedRoleName(role);
		std::string database = Call([] { return get_database_name(MyDatabaseId); });
		throw Error("2BP01",
					"role \"" + std::string(spec->rolename) +
						"\" cannot be dropped because it owns rivers in database \"" + database +
						"\": " + RiverList(rivers),
					"A river's worker logs in as the river's owner; mongo_river.river.owner is no dependency "
					"PostgreSQL tracks.",
					"Drop the rivers (mongo_river.drop_river), or give them and the role's other objects to a role "
					"that can log in: REASSIGN OWNED BY " +
						name + " TO other_role;");
	}
}

// ReassignedRoles resolves the old roles of REASSIGN OWNED (missing ones are skipped: the statement
// fails on them itself).
std::vector<Oid> ReassignedRoles(ReassignOwnedStmt *stmt) {
	std::vector<Oid> roles;
	ListCell *cell;
	foreach (cell, stmt->roles) {
		RoleSpec *spec = static_cast<RoleSpec *>(lfirst(cell));
		Oid role = Call([&] { return get_rolespec_oid(spec, true); });
		if (OidIsValid(role))
			roles.push_back(role);
	}
	return roles;
}

// BeforeReassign refuses (42501) REASSIGN OWNED BY old TO new when old owns rivers in this
// database and new cannot log in, before anything changes. A caller that lacks the privileges of
// a role involved learns nothing here: REASSIGN OWNED refuses it itself.
void BeforeReassign(ReassignOwnedStmt *stmt) {
	if (!ExtensionHere())
		return;
	Oid new_owner = Call([&] { return get_rolespec_oid(stmt->newrole, true); });
	if (!OidIsValid(new_owner) || RoleCanLogIn(new_owner))
		return;
	Oid caller = GetUserId();
	if (!Call([&] { return has_privs_of_role(caller, new_owner); }))
		return;
	std::vector<Oid> roles = ReassignedRoles(stmt);
	for (Oid role : roles)
		if (!Call([&] { return has_privs_of_role(caller, role); }))
			return;
	for (Oid role : roles) {
		if (role == new_owner)
			continue;
		std::vector<std::string> rivers = RiversOwnedBy(role);
		if (rivers.empty())
			continue;
		throw Error(sqlstate::kInsufficientPrivilege,
					"role \"" + RoleName(new_owner) + "\" cannot own rivers: it cannot log in",
					"Role \"" + RoleName(role) + "\" owns rivers in this database (" + RiverList(rivers) +
						"); a river's worker logs in as the river's owner.",
					"Reassign to a role with LOGIN, or first run: ALTER ROLE " + QuotedRoleName(new_owner) + " LOGIN;");
	}
}

// AfterReassign gives the rivers of the old roles to the new one, once REASSIGN OWNED has moved
// their tables; the catalog's trigger checks the new owner as for any owner. The launcher restarts
// each moved river's worker as its new owner when the transaction commits.
void AfterReassign(ReassignOwnedStmt *stmt) {
	if (!ExtensionHere())
		return;
	Oid new_owner = Call([&] { return get_rolespec_oid(stmt->newrole, false); });
	std::vector<std::string> moved;
	{
		// The catalog's triggers judge the role running REASSIGN OWNED (catalog::CallerOid).
		catalog::CallerScope caller(GetUserId());
		catalog::AsCatalogOwner as_catalog_owner;
		SpiConnection spi;
		for (Oid role : ReassignedRoles(stmt)) {
			if (role == new_owner)
				continue;
			uint64 rows = SpiExecute("UPDATE mongo_river.river SET owner = $1::regrole WHERE owner::oid = $2"
									 " RETURNING river::text",
									 {{OIDOID, ObjectIdGetDatum(new_owner)}, {OIDOID, ObjectIdGetDatum(role)}});
			for (uint64 row = 0; row < rows; row++)
				moved.push_back(SpiText(row, 1).value_or(""));
		}
	}
	for (const std::string &river : moved)
		worker::WakeAtTransactionEnd(river);
}

// AfterAlterRole: ALTER ROLE ... NOLOGIN of a role owning rivers warns that their workers stop (the
// launcher stops them: they log in as the owner); NOLOGIN and LOGIN wake the launcher at commit,
// so that it acts at once rather than within mongo_river.naptime.
void AfterAlterRole(AlterRoleStmt *stmt) {
	std::optional<bool> can_login;
	ListCell *cell;
	foreach (cell, stmt->options) {
		DefElem *option = static_cast<DefElem *>(lfirst(cell));
		if (strcmp(option->defname, "canlogin") == 0)
			can_login = Call([&] { return defGetBoolean(option); });
	}
	if (!can_login || !ExtensionHere())
		return;
	Oid role = Call([&] { return get_rolespec_oid(stmt->role, false); });
	std::vector<std::string> rivers = RiversOwnedBy(role);
	if (rivers.empty())
		return;
	if (!*can_login) {
		std::string name = RoleName(role), quoted = QuotedRoleName(role), list = RiverList(rivers);
		Call([&] {
			ereport(WARNING,
					(errmsg("role \"%s\" owns rivers whose workers stop while it cannot log in: %s", name.c_str(),
							list.c_str()),
					 errdetail("A river's worker logs in as the river's owner."),
					 errhint("ALTER ROLE %s LOGIN lets them run again; REASSIGN OWNED BY %s TO another role gives "
							 "them away.",
							 quoted.c_str(), quoted.c_str())));
		});
	}
	for (const std::string &river : rivers)
		worker::WakeAtTransactionEnd(river);
}

// UtilityHook is our ProcessUtility_hook: it guards DROP EXTENSION mongo_river and DROP ROLE, runs
// the statement as the previous hook (or PostgreSQL) would, then moves the rivers of REASSIGN OWNED.
// No C++ object lives in this frame: the statement may raise an ERROR (longjmp).
void UtilityHook(PlannedStmt *pstmt, const char *query_string, bool read_only_tree, ProcessUtilityContext context,
				 ParamListInfo params, QueryEnvironment *query_env, DestReceiver *dest, QueryCompletion *qc) {
	Node *stmt = pstmt->utilityStmt;
	if (DropsOurExtension(stmt)) {
		DropBehavior behavior = reinterpret_cast<DropStmt *>(stmt)->behavior;
		Guard([&] { BeforeDrop(behavior); });
	} else if (IsA(stmt, DropRoleStmt)) {
		Guard([&] { BeforeDropRole(reinterpret_cast<DropRoleStmt *>(stmt)); });
	} else if (IsA(stmt, ReassignOwnedStmt)) {
		Guard([&] { BeforeReassign(reinterpret_cast<ReassignOwnedStmt *>(stmt)); });
	}
	if (previous_hook)
		previous_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
	else
		standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
	if (IsA(stmt, ReassignOwnedStmt))
		Guard([&] { AfterReassign(reinterpret_cast<ReassignOwnedStmt *>(stmt)); });
	else if (IsA(stmt, AlterRoleStmt))
		Guard([&] { AfterAlterRole(reinterpret_cast<AlterRoleStmt *>(stmt)); });
}

} // namespace

void InstallUtilityHook() {
	previous_hook = ProcessUtility_hook;
	ProcessUtility_hook = UtilityHook;
}

} // namespace mongo_river::pg
