// selftest.cpp: SQL-callable probes of the C++/PostgreSQL boundary, used by the regression tests.
//
// They are in the module but not in the extension's SQL: a test declares them with CREATE FUNCTION
// (superuser only), so users never see them.
#include <new>
#include <stdexcept>
#include <string>

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "utils/builtins.h"
}

namespace mongo_river::pg {

namespace {

// destructor_runs counts DestructorProbe destructions in this backend.
int64 destructor_runs = 0;

// DestructorProbe proves that unwinding ran: its destructor bumps destructor_runs.
struct DestructorProbe {
	std::string payload = std::string(64, 'x'); // owns heap memory, like real C++ frames do
	~DestructorProbe() { destructor_runs++; }
};

// DivideByZero raises a genuine PostgreSQL ERROR (22012) from a built-in function.
Datum DivideByZero() {
	return DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0));
}

// ProbeBoundary raises the failure named by mode under a live C++ frame.
int64 ProbeBoundary(const std::string &mode) {
	DestructorProbe probe;
	if (mode == "pg_error")
		Call(DivideByZero);
	else if (mode == "error")
		throw Error(sqlstate::kInvalidParameterValue, "probe: mongo_river::Error", "probe detail", "probe hint");
	else if (mode == "bad_alloc")
		throw std::bad_alloc();
	else if (mode == "std_exception")
		throw std::runtime_error("probe: std::runtime_error");
	else if (mode == "pg_ok")
		return DatumGetInt32(Call([] { return DirectFunctionCall2(int4div, Int32GetDatum(84), Int32GetDatum(2)); }));
	else if (mode != "none")
		throw Error(sqlstate::kInvalidParameterValue, "unknown probe mode \"" + mode + "\"", {},
					"Use none, pg_ok, pg_error, error, bad_alloc or std_exception.");
	return 0;
}

} // namespace

} // namespace mongo_river::pg

// mongo_river_test_boundary(mode text) raises the failure named by mode from under a C++ frame
// (or returns 0, or 42 for pg_ok); mongo_river_test_destructor_runs() counts the frames unwound.
MONGO_RIVER_FUNCTION(mongo_river_test_boundary) {
	text *mode_text = PG_GETARG_TEXT_PP(0);
	char *mode = text_to_cstring(mode_text);
	return mongo_river::pg::Guard([&] { return Int64GetDatum(mongo_river::pg::ProbeBoundary(mode)); });
}

MONGO_RIVER_FUNCTION(mongo_river_test_destructor_runs) {
	(void)fcinfo;
	return Int64GetDatum(mongo_river::pg::destructor_runs);
}
