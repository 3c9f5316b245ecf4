// transaction.cpp: transaction control for background workers.
#include "mongo_river/pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/resowner.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "storage/proc.h"
}

namespace mongo_river::pg {

namespace {

// procedure_mode is set while a procedure (CALL, non-atomic) runs worker code: transactions are
// then ended with SPI_commit/SPI_rollback, which start the next one.
bool procedure_mode = false;
// owner_code_scopes counts the open OwnerCodeScopes.
int owner_code_scopes = 0;

} // namespace

GucLevel::GucLevel(const char *search_path) {
	Call([&] {
		level_ = NewGUCNestLevel();
		transaction_ = MyProc->lxid;
		if (search_path)
			(void)set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
									false);
	});
}

GucLevel::~GucLevel() {
	// On an error the transaction's (or subtransaction's) abort pops the level; after a commit it
	// is gone already.
	if (std::uncaught_exceptions() > 0 || MyProc->lxid != transaction_)
		return;
	try {
		Call([&] { AtEOXact_GUC(false, level_); });
	} catch (...) {
	}
}

OwnerCodeScope::OwnerCodeScope() {
	owner_code_scopes++;
}

OwnerCodeScope::~OwnerCodeScope() {
	owner_code_scopes--;
}

ProcedureTransactions::ProcedureTransactions() {
	Call([] {
		if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
			elog(ERROR, "mongo_river: SPI_connect_ext failed");
	});
	procedure_mode = true;
}

ProcedureTransactions::~ProcedureTransactions() {
	procedure_mode = false;
	if (std::uncaught_exceptions() == 0) {
		try {
			Call([] { SPI_finish(); });
		} catch (...) {
		}
	}
}

Transaction::Transaction() {
	Call([] {
		SetCurrentStatementStartTimestamp();
		if (!procedure_mode)
			StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
	});
	if (procedure_mode && owner_code_scopes > 0)
		guc_level_ = Call([] { return NewGUCNestLevel(); });
}

void Transaction::Commit() {
	Call([&] {
		if (guc_level_ > 0)
			AtEOXact_GUC(false, guc_level_); // what the owner's code set ends here, not in the session
		PopActiveSnapshot();
		if (procedure_mode)
			SPI_commit();
		else
			CommitTransactionCommand();
	});
	open_ = false;
}

Transaction::~Transaction() {
	if (!open_)
		return;
	try {
		if (procedure_mode)
			Call([] {
				// SPI connections opened after the procedure's own (catalog reads, each atomic) are still
				// open when an error unwinds through them (SpiConnection leaves them to the transaction's
				// end): SPI_rollback would refuse in an atomic one (2D000, "invalid transaction
				// termination") and that error would replace the one being reported. Close them first.
				// Outside a subtransaction the procedure's own connection is the first non-atomic one
				// from the top (sync_once refuses to start inside one); inside one, every connection
				// counts as atomic: nothing is closed, and SPI_rollback is not called (the error goes
				// on to the caller, whose abort ends the transaction).
				if (!IsSubTransaction()) {
					while (!SPI_inside_nonatomic_context())
						if (SPI_finish() != SPI_OK_FINISH)
							break;
					if (SPI_inside_nonatomic_context())
						SPI_rollback();
				}
			});
		else
			Call([] { AbortCurrentTransaction(); });
	} catch (...) {
		// Nothing more can be done here; the next StartTransactionCommand reports a broken state.
	}
}

SubtransactionState BeginSubtransaction() {
	SubtransactionState state{CurrentMemoryContext, CurrentResourceOwner};
	Call([&] {
		BeginInternalSubTransaction(nullptr);
		MemoryContextSwitchTo(state.context);
	});
	return state;
}

void ReleaseSubtransaction(const SubtransactionState &state) {
	Call([&] {
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(state.context);
		CurrentResourceOwner = state.owner;
	});
}

void RollbackSubtransaction(const SubtransactionState &state) {
	Call([&] {
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(state.context);
		CurrentResourceOwner = state.owner;
	});
}

} // namespace mongo_river::pg
