// transaction.hpp: transactions and subtransactions of a background worker, for C++ code.
#pragma once

#include <optional>
#include <utility>

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "utils/resowner.h"
}

namespace mongo_river::pg {

// GucLevel opens a GUC nest level (as PostgreSQL does around a SECURITY DEFINER function or a
// maintenance command run as a table's owner): every setting changed while it is open -- by our
// SQL or by user code it runs, such as the river owner's triggers -- is undone when it closes, so
// nothing leaks into the calling session. search_path, when given, is set at the level (the
// catalog's SQL then never resolves a function or operator in a schema the caller chose). A level
// outlived by its transaction (a procedure's commit pops every level) is left alone.
class GucLevel {
public:
	explicit GucLevel(const char *search_path = nullptr);
	~GucLevel();
	GucLevel(const GucLevel &) = delete;
	GucLevel &operator=(const GucLevel &) = delete;

private:
	int level_ = 0;
	uint32 transaction_ = 0;
};

// OwnerCodeScope marks code that runs another role's code (the river owner's triggers, as
// catalog::AsRole does): while one is open, each Transaction of a procedure (sync_once) opens a
// GucLevel of its own and closes it before it commits, since the commit would keep what the
// owner's code set.
class OwnerCodeScope {
public:
	OwnerCodeScope();
	~OwnerCodeScope();
	OwnerCodeScope(const OwnerCodeScope &) = delete;
	OwnerCodeScope &operator=(const OwnerCodeScope &) = delete;
};

// Transaction starts a transaction with an active snapshot; Commit commits it. Destroyed without
// a commit (an exception is unwinding), it aborts the transaction, which also undoes every
// PostgreSQL resource the failed work held (SPI, locks, memory).
class Transaction {
public:
	Transaction();
	~Transaction();
	Transaction(const Transaction &) = delete;
	Transaction &operator=(const Transaction &) = delete;

	void Commit();

private:
	bool open_ = true;
	int guc_level_ = 0; // a procedure's transaction inside an OwnerCodeScope
};

// ProcedureTransactions switches Transaction to a procedure's transaction control for its lifetime:
// it connects to SPI in non-atomic mode (the CALL must allow it), and Transaction then commits with
// SPI_commit (which starts the next transaction) and aborts with SPI_rollback.
class ProcedureTransactions {
public:
	ProcedureTransactions();
	~ProcedureTransactions();
	ProcedureTransactions(const ProcedureTransactions &) = delete;
	ProcedureTransactions &operator=(const ProcedureTransactions &) = delete;
};

// SubtransactionState is what a subtransaction restores on its end (plpgsql's exception blocks do
// the same): the caller's memory context and resource owner.
struct SubtransactionState {
	MemoryContext context;
	ResourceOwner owner;
};

SubtransactionState BeginSubtransaction();
void ReleaseSubtransaction(const SubtransactionState &state);
void RollbackSubtransaction(const SubtransactionState &state);

// TrySubtransaction runs work in a subtransaction: on a PostgreSQL error (PgError) the
// subtransaction is rolled back and the error returned (ownership passes to the caller) so that
// the rest of the transaction goes on; other exceptions roll back and propagate.
template <typename Work> std::optional<PgError> TrySubtransaction(Work &&work) {
	SubtransactionState state = BeginSubtransaction();
	try {
		work();
	} catch (PgError &error) {
		RollbackSubtransaction(state);
		return std::optional<PgError>(std::move(error));
	} catch (...) {
		RollbackSubtransaction(state);
		throw;
	}
	ReleaseSubtransaction(state);
	return std::nullopt;
}

} // namespace mongo_river::pg
