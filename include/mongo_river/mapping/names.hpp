// names.hpp: default PostgreSQL identifiers for collections and field paths (PG-free).
//
// The rules, applied in this order to a collection name or a field path joined with '.':
//   1. ASCII letters are lowercased.
//   2. Every run of characters outside [a-z0-9_] (any other byte, UTF-8 included) becomes one '_'.
//      `author.name` -> `author_name`, `Order Items!` -> `order_items_`.
//   3. A leading digit gets a '_' prefix: `2fa` -> `_2fa`.
//   4. An empty result becomes `_`.
//   5. A result longer than 63 bytes (PostgreSQL's NAMEDATALEN - 1) is cut to 54 bytes and suffixed
//      with '_' and 8 lowercase hex digits of the 32-bit FNV-1a hash of the full original name, so
//      that distinct long names stay distinct and the same name always gives the same identifier.
// Reserved words are left alone: every identifier mongo_river emits is quoted. Uniqueness against
// names already taken (other columns, other tables) is obtained with UniqueName.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mongo_river::mapping {

// kMaxIdentifierBytes is the longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
inline constexpr std::size_t kMaxIdentifierBytes = 63;

// Fnv1a32 hashes bytes with 32-bit FNV-1a; it is the stable hash behind shortened identifiers.
std::uint32_t Fnv1a32(std::string_view bytes);

// DefaultIdentifier turns a collection name or field path into an identifier by the rules above,
// so the same source always lands in the same table and column.
std::string DefaultIdentifier(std::string_view name);

// ColumnNameForPath joins path keys with '.' and applies DefaultIdentifier (`author.name` ->
// `author_name`), the default column name for a mapped field.
std::string ColumnNameForPath(const std::vector<std::string> &path);

// TruncateIdentifier cuts name to at most max_bytes bytes without splitting a UTF-8 character, for
// suffixing user-given names.
std::string TruncateIdentifier(std::string_view name, std::size_t max_bytes = kMaxIdentifierBytes);

// UniqueName returns base when taken(base) is false, otherwise base with the first suffix _2, _3,
// ... that is free, cutting base so the result stays within 63 bytes; callers pass a predicate
// that knows their namespace (a table's columns, a schema's tables).
std::string UniqueName(std::string_view base, const std::function<bool(const std::string &)> &taken);

} // namespace mongo_river::mapping
