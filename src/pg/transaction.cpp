// transaction.cpp: transaction control for background workers.
#include "mongo_river/pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
}

namespace mongo_river::pg {

Transaction::Transaction() {
	Call([] {
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
	});
}

void Transaction::Commit() {
	Call([] {
		PopActiveSnapshot();
		CommitTransactionCommand();
	});
	open_ = false;
}

Transaction::~Transaction() {
	if (!open_)
		return;
	try {
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
