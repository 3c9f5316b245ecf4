// entry.cpp: the public functions of schema mongo_river are entry points that record who called
// them, then run their implementation of the same name and signature in mongo_river_internal.
//
// Why: the implementations run as the catalog's owner (SECURITY DEFINER) and check the caller
// themselves. Inside them, PostgreSQL no longer knows the role that called: current_user is the
// catalog's owner, and the session's role (GetOuterUserId) is the wrong answer when a SECURITY
// DEFINER function of another role called us (its owner's rights, not its caller's, must apply).
// The entry point is SECURITY INVOKER, so GetUserId() at its boundary is exactly that role; it
// records it (catalog::PushCaller) for the checks (catalog::CallerOid) and pops it on return and
// on error. The implementations are not executable by PUBLIC: calling one by its SQL name
// needs EXECUTE, calling it through fmgr here does not.
#include "mongo_river/catalog/identity.hpp"
#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace {

constexpr const char *kInternalSchema = "mongo_river_internal";

// Implementation is the cached lookup of an entry point's implementation (in fn_extra).
struct Implementation {
	FmgrInfo flinfo;
};

// FindImplementation returns the implementation of the entry point flinfo calls: the function of
// mongo_river_internal with the entry point's name and argument types.
Implementation *FindImplementation(FmgrInfo *flinfo) {
	if (flinfo->fn_extra)
		return static_cast<Implementation *>(flinfo->fn_extra);
	HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(flinfo->fn_oid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", flinfo->fn_oid);
	auto *proc = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tuple));
	Oid schema = get_namespace_oid(kInternalSchema, true);
	Oid impl = OidIsValid(schema) ? GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, NameGetDatum(&proc->proname),
													PointerGetDatum(&proc->proargtypes), ObjectIdGetDatum(schema))
								  : InvalidOid;
	ReleaseSysCache(tuple);
	if (!OidIsValid(impl))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the implementation of %s is missing from schema %s", format_procedure(flinfo->fn_oid),
						kInternalSchema),
				 errhint("Reinstall the extension: ALTER EXTENSION mongo_river UPDATE, or DROP and CREATE it.")));
	auto *cached = static_cast<Implementation *>(MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(Implementation)));
	fmgr_info_cxt(impl, &cached->flinfo, flinfo->fn_mcxt);
	cached->flinfo.fn_expr = flinfo->fn_expr;
	flinfo->fn_extra = cached;
	return cached;
}

} // namespace

// mongo_river_entry is the C function behind every public function of schema mongo_river that
// checks its caller: it records GetUserId() and calls the implementation with the same arguments,
// call context (CALL's transaction control) and result info (set-returning functions).
MONGO_RIVER_FUNCTION(mongo_river_entry) {
	Implementation *impl = FindImplementation(fcinfo->flinfo);
	LOCAL_FCINFO(call, FUNC_MAX_ARGS);
	InitFunctionCallInfoData(*call, &impl->flinfo, fcinfo->nargs, fcinfo->fncollation, fcinfo->context,
							 fcinfo->resultinfo);
	for (int i = 0; i < fcinfo->nargs; i++)
		call->args[i] = fcinfo->args[i];
	int depth = mongo_river::catalog::PushCaller(InvalidOid);
	volatile Datum result = 0;
	PG_TRY();
	{ result = FunctionCallInvoke(call); }
	PG_FINALLY();
	{ mongo_river::catalog::PopCaller(depth); }
	PG_END_TRY();
	fcinfo->isnull = call->isnull;
	return result;
}
