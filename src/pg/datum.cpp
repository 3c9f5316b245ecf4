// datum.cpp: Datum <-> C++ value conversions through pg::Call.
#include "mongo_river/pg/datum.hpp"

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

namespace mongo_river::pg {

std::string TextArg(Datum datum) {
	text *value = Call([&] { return DatumGetTextPP(datum); });
	return std::string(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
}

Datum TextDatum(std::string_view value) {
	return Call([&] { return PointerGetDatum(cstring_to_text_with_len(value.data(), int(value.size()))); });
}

Datum NameDatum(const std::string &value) {
	return Call([&] { return DirectFunctionCall1(namein, CStringGetDatum(value.c_str())); });
}

std::string JsonbText(Datum datum) {
	char *json = Call([&] { return DatumGetCString(DirectFunctionCall1(jsonb_out, datum)); });
	std::string result(json);
	pfree(json);
	return result;
}

Datum JsonbDatum(const std::string &json) {
	return Call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(json.c_str())); });
}

} // namespace mongo_river::pg
