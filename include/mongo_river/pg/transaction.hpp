// transaction.hpp: transactions and subtransactions of a background worker, for C++ code.
#pragma once

#include <optional>
#include <utility>

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "utils/resowner.h"
}

namespace mongo_river::pg {

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
