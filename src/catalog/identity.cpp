// identity.cpp: catalog writes as the catalog's owner; DDL as the river's owner.
#include "mongo_river/catalog/identity.hpp"

#include <string>

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace mongo_river::catalog {

namespace {

ProcessUtility_hook_type previous_utility_hook = nullptr;
// acting_owner is the owner of the river the running mongo_river function acts for (InvalidOid:
// none); it lasts until the end of the transaction.
Oid acting_owner = InvalidOid;
bool callback_registered = false;

// The caller stack: every call of a public mongo_river function (and the worker, for its whole run)
// records the role it acts for, with the acting owner to restore when it returns. A plain array:
// a frame is pushed and popped around one function call (PG_FINALLY pops it on errors too).
constexpr int kMaxCallerDepth = 32;
struct CallerFrame {
	Oid caller;
	Oid acting_owner;
};
CallerFrame caller_stack[kMaxCallerDepth];
int caller_depth = 0;

// CatalogOwnerOid returns the owner of mongo_river.river (the extension's tables' owner), or
// InvalidOid when the extension is missing.
Oid CatalogOwnerOid() {
	Oid schema = get_namespace_oid("mongo_river", true);
	Oid relation = OidIsValid(schema) ? get_relname_relid("river", schema) : InvalidOid;
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relation));
	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

// ForgetActingOwner ends acting_owner with the transaction.
void ForgetActingOwner(XactEvent event, void *) {
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
		acting_owner = InvalidOid;
}

// RunUtility calls the previous hook or standard_ProcessUtility.
void RunUtility(PlannedStmt *pstmt, const char *query, bool read_only_tree, ProcessUtilityContext context,
				ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc) {
	if (previous_utility_hook)
		previous_utility_hook(pstmt, query, read_only_tree, context, params, env, dest, qc);
	else
		standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
}

// OwnerUtility is the ProcessUtility hook: a utility statement run by a function of ours (inside a
// SECURITY DEFINER call owned by the catalog owner, not at top level) while it acts for a river
// runs as that river's owner, so that a function's DDL never has more rights than the owner has.
// No C++ object lives in this frame (PG_TRY/longjmp).
void OwnerUtility(PlannedStmt *pstmt, const char *query, bool read_only_tree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc) {
	Oid user = GetUserId();
	if (!OidIsValid(acting_owner) || context == PROCESS_UTILITY_TOPLEVEL || !InLocalUserIdChange() ||
		user == acting_owner || user != CatalogOwnerOid()) {
		RunUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
		return;
	}
	Oid saved_user;
	int saved_context;
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(acting_owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{ RunUtility(pstmt, query, read_only_tree, context, params, env, dest, qc); }
	PG_FINALLY();
	{ SetUserIdAndSecContext(saved_user, saved_context); }
	PG_END_TRY();
}

} // namespace

int PushCaller(Oid role) {
	if (caller_depth == kMaxCallerDepth)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("mongo_river functions are nested more than %d deep", kMaxCallerDepth)));
	Oid caller = OidIsValid(role) ? role : GetUserId();
	// A call made by mongo_river's own code (running as the catalog's owner) acts for the role the
	// enclosing call acts for.
	if (!OidIsValid(role) && caller_depth > 0 && InLocalUserIdChange() && caller == CatalogOwnerOid())
		caller = caller_stack[caller_depth - 1].caller;
	caller_stack[caller_depth] = {caller, acting_owner};
	return caller_depth++;
}

void PopCaller(int depth) {
	if (depth < 0 || depth >= caller_depth)
		return;
	acting_owner = caller_stack[depth].acting_owner;
	caller_depth = depth;
}

Oid CallerOid() {
	Oid user = GetUserId();
	if (caller_depth > 0 && (user == caller_stack[caller_depth - 1].caller || user == CatalogOwnerOid()))
		return caller_stack[caller_depth - 1].caller;
	if (InLocalUserIdChange() && user == CatalogOwnerOid())
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("mongo_river's internal functions are not entry points"),
						errdetail("They run as the owner of mongo_river's catalog and check the role that called a "
								  "function of schema mongo_river."),
						errhint("Call the functions of schema mongo_river.")));
	return user;
}

CallerScope::CallerScope(Oid role) {
	depth_ = pg::Call([&] { return PushCaller(role); });
}

CallerScope::~CallerScope() {
	PopCaller(depth_);
}

AsCatalogOwner::AsCatalogOwner() {
	Oid owner = pg::Call([] { return CatalogOwnerOid(); });
	if (!OidIsValid(owner))
		throw Error("55000", "mongo_river's catalog tables do not exist", {},
					"CREATE EXTENSION mongo_river in the database named by mongo_river.database.");
	GetUserIdAndSecContext(&saved_user_, &saved_context_);
	SetUserIdAndSecContext(owner, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
}

AsCatalogOwner::~AsCatalogOwner() {
	SetUserIdAndSecContext(saved_user_, saved_context_);
}

AsRole::AsRole(Oid role) {
	if (!pg::Call([&] { return OidIsValid(role) && SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)); }))
		throw Error("42704",
					"mongo_river: the river's owner (role with OID " + std::to_string(role) + ") does not exist",
					"It was dropped from another database, where DROP ROLE cannot see the rivers.",
					"A superuser can drop the river (mongo_river.drop_river).");
	GetUserIdAndSecContext(&saved_user_, &saved_context_);
	// A security-restricted operation, as PostgreSQL runs a table owner's code in VACUUM or CREATE
	// INDEX: the owner's triggers may not leave temporary objects, prepared statements or cursors
	// WITH HOLD in the caller's session (and settings are undone: settings_).
	SetUserIdAndSecContext(role, saved_context_ | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

AsRole::~AsRole() {
	SetUserIdAndSecContext(saved_user_, saved_context_);
}

void InstallOwnerUtilityHook() {
	previous_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = OwnerUtility;
}

} // namespace mongo_river::catalog

// mongo_river_act_for(owner regrole) makes the utility statements of the running mongo_river
// function (and of the rest of the transaction's calls of ours) run as owner. Not for PUBLIC:
// only our SECURITY DEFINER functions call it, after checking the caller.
MONGO_RIVER_FUNCTION(mongo_river_act_for) {
	using namespace mongo_river;
	return pg::Guard([&] {
		Oid owner = PG_GETARG_OID(0);
		if (!catalog::callback_registered) {
			pg::Call([] { RegisterXactCallback(catalog::ForgetActingOwner, nullptr); });
			catalog::callback_registered = true;
		}
		catalog::acting_owner = owner;
		PG_RETURN_VOID();
	});
}
