// datum.hpp: small conversions between Datums and C++ values, each safe under C++ frames.
#pragma once

#include <string>
#include <string_view>

#include "mongo_river/pg/postgres.hpp"

namespace mongo_river::pg {

// TextArg copies a text Datum into a std::string.
std::string TextArg(Datum datum);

// TextDatum returns a palloc'd text Datum holding value.
Datum TextDatum(std::string_view value);

// NameDatum returns a palloc'd name Datum (truncated to NAMEDATALEN - 1 bytes like namein).
Datum NameDatum(const std::string &value);

// JsonbText renders a jsonb Datum as JSON text (jsonb_out).
std::string JsonbText(Datum datum);

// JsonbDatum parses JSON text into a jsonb Datum (jsonb_in); malformed text raises 22P02.
Datum JsonbDatum(const std::string &json);

} // namespace mongo_river::pg
