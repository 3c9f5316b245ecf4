// same_value.hpp: compare row texts by value where doubles were once written in a longer form (PG-free).
#pragma once

#include <string_view>

namespace mongo_river::convert {

// SameUpToDoubleText tells whether two row texts (verify's rendering of stored and expected rows)
// are equal once each pair of differing number literals is compared as doubles: a literal of 18 or
// more significant digits (river 0.2.0 wrote jsonb doubles with libbson's %.20g, e.g.
// 0.10000000000000000555) equals one of at most 17 (the shortest round-trip form, 0.1) when both
// parse to the same double. Everything else must match character for character, so two integers of
// up to 17 digits, or two long literals, are never taken for each other.
bool SameUpToDoubleText(std::string_view stored, std::string_view expected);

} // namespace mongo_river::convert
