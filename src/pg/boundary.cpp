// boundary.cpp: PgError, and the capture/raise halves of pg::Guard.
#include <cstdlib>
#include <cstring>
#include <new>

#include "mongo_river/pg/boundary.hpp"

namespace mongo_river::pg {

PgError::~PgError() {
	if (edata_)
		FreeErrorData(edata_);
}

const char *PgError::what() const noexcept {
	return edata_ && edata_->message ? edata_->message : "PostgreSQL error";
}

namespace {

// ErrorCopies is where caught errors are copied: it outlives transactions, since a PgError may be
// handled after the transaction it was raised in has been aborted (which frees its memory).
MemoryContext ErrorCopies() {
	static MemoryContext context = nullptr;
	if (!context)
		context = AllocSetContextCreate(TopMemoryContext, "mongo_river caught errors", ALLOCSET_SMALL_SIZES);
	return context;
}

} // namespace

ErrorData *CatchCurrentError(MemoryContext context) {
	MemoryContextSwitchTo(ErrorCopies());
	ErrorData *edata = CopyErrorData();
	FlushErrorState();
	MemoryContextSwitchTo(context);
	return edata;
}

namespace {

// Dup copies text with malloc; nullptr when out of memory (RaiseCaptured then uses a fallback).
char *Dup(const std::string &text) noexcept {
	return text.empty() ? nullptr : strdup(text.c_str());
}

void SetSqlstate(Captured &captured, const char *code) noexcept {
	std::memcpy(captured.sqlstate, code, 5);
	captured.sqlstate[5] = '\0';
}

// Take moves a malloc'd string into palloc'd memory and frees the malloc'd copy.
char *Take(char *&text) {
	if (!text)
		return nullptr;
	char *copy = pstrdup(text);
	std::free(text);
	text = nullptr;
	return copy;
}

} // namespace

void Capture(Captured &captured) noexcept {
	try {
		throw;
	} catch (PgError &e) {
		captured.pg_error = e.Release();
	} catch (const Error &e) {
		SetSqlstate(captured, e.Sqlstate().c_str());
		captured.message = Dup(e.Message());
		captured.detail = Dup(e.Detail());
		captured.hint = Dup(e.Hint());
	} catch (const std::bad_alloc &) {
		SetSqlstate(captured, "53200");
		captured.message = strdup("out of memory in mongo_river");
	} catch (const std::exception &e) {
		SetSqlstate(captured, sqlstate::kInternalError);
		captured.message = strdup(e.what());
		captured.hint = strdup("This is a bug in mongo_river: please report it with the statement that raised it.");
	} catch (...) {
		SetSqlstate(captured, sqlstate::kInternalError);
		captured.message = strdup("unknown C++ exception in mongo_river");
	}
}

void RaiseCaptured(Captured &captured) {
	if (captured.pg_error)
		ReThrowError(captured.pg_error);
	const char *s = captured.sqlstate;
	int code = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
	char *message = Take(captured.message);
	char *detail = Take(captured.detail);
	char *hint = Take(captured.hint);
	// A C++ error raised while an interrupt is pending (a source wait that gave up for it) is the
	// interrupt's doing: report the cancel or terminate as PostgreSQL does.
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR, (errcode(code), errmsg_internal("%s", message ? message : "mongo_river error"),
					detail ? errdetail_internal("%s", detail) : 0, hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

} // namespace mongo_river::pg
