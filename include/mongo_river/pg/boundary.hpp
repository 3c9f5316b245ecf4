// boundary.hpp: the one crossing between C++ (exceptions, destructors) and PostgreSQL (longjmp).
//
// Rules (STYLE.md): ereport(ERROR) longjmps and would skip C++ destructors, so a frame that owns
// C++ objects calls PostgreSQL only through pg::Call, which turns the ERROR into a C++ PgError.
// Every extern "C" entry point runs its body through pg::Guard, which turns any exception back
// into a PostgreSQL ERROR with a real SQLSTATE once every C++ frame is gone.
#pragma once

#include <exception>
#include <type_traits>
#include <utility>

#include "mongo_river/error.hpp"
#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::pg {

// PgError owns the copy of a PostgreSQL ERROR caught by pg::Call until pg::Guard re-throws it.
class PgError : public std::exception {
public:
	explicit PgError(ErrorData *edata) noexcept : edata_(edata) {}
	PgError(PgError &&other) noexcept : edata_(std::exchange(other.edata_, nullptr)) {}
	PgError(const PgError &) = delete;
	PgError &operator=(const PgError &) = delete;
	PgError &operator=(PgError &&) = delete;
	~PgError() override;

	const char *what() const noexcept override;
	// Sqlstate returns the error's SQLSTATE as PostgreSQL encodes it (MAKE_SQLSTATE).
	int Sqlstate() const noexcept { return edata_ ? edata_->sqlerrcode : 0; }
	// Release hands the ErrorData to the caller, who must re-throw or free it.
	ErrorData *Release() noexcept { return std::exchange(edata_, nullptr); }

private:
	ErrorData *edata_;
};

// CatchCurrentError copies the error being handled into a context that outlives transactions,
// flushes the error state and returns to context (the caller's memory context before the call).
ErrorData *CatchCurrentError(MemoryContext context);

// Call runs func, a thin call into PostgreSQL that owns no C++ objects, under PG_TRY. A PostgreSQL
// ERROR becomes a thrown PgError (its copy survives transaction aborts), so destructors of the
// calling C++ frames run. func's result must be trivially copyable (Datum, pointers, numbers).
template <typename Func> auto Call(Func &&func) -> decltype(func()) {
	using Result = decltype(func());
	MemoryContext context = CurrentMemoryContext;
	ErrorData *volatile caught = nullptr;
	if constexpr (std::is_void_v<Result>) {
		PG_TRY();
		{ func(); }
		PG_CATCH();
		{ caught = CatchCurrentError(context); }
		PG_END_TRY();
		if (caught)
			throw PgError(caught);
	} else {
		static_assert(std::is_trivially_copyable_v<Result>, "pg::Call returns only trivially copyable values");
		volatile Result result{};
		PG_TRY();
		{ result = func(); }
		PG_CATCH();
		{ caught = CatchCurrentError(context); }
		PG_END_TRY();
		if (caught)
			throw PgError(caught);
		return result;
	}
}

// Captured is what Guard keeps of an exception: plain malloc'd strings, nothing with a destructor,
// so the ERROR can be raised after the catch block without leaking or running C++ code.
struct Captured {
	ErrorData *pg_error;
	char sqlstate[6];
	char *message;
	char *detail;
	char *hint;
};

// Capture records the exception being handled (call only inside a catch block).
void Capture(Captured &captured) noexcept;

// RaiseCaptured re-throws a captured PostgreSQL ERROR with its SQLSTATE kept, or reports a C++
// exception as an ERROR with its own SQLSTATE (XX000 for exceptions that carry none).
[[noreturn]] void RaiseCaptured(Captured &captured);

// Guard runs the body of an extern "C" entry point (a SQL function or a worker main): any
// exception leaving body becomes a PostgreSQL ERROR after every C++ frame of body is unwound.
template <typename Body> auto Guard(Body &&body) -> decltype(body()) {
	Captured captured{};
	try {
		return body();
	} catch (...) {
		Capture(captured);
	}
	RaiseCaptured(captured);
}

} // namespace mongo_river::pg

// MONGO_RIVER_FUNCTION declares a SQL-callable C function with the V1 calling convention.
#define MONGO_RIVER_FUNCTION(name)                                                                                     \
	extern "C" {                                                                                                       \
	PG_FUNCTION_INFO_V1(name);                                                                                         \
	}                                                                                                                  \
	extern "C" Datum name(PG_FUNCTION_ARGS)
