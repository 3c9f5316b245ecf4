// spi.hpp: SPI (PostgreSQL's server programming interface) for C++ code, through pg::Call.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "mongo_river/pg/postgres.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace mongo_river::pg {

// SpiConnection connects to SPI for its lifetime. When it is destroyed by an exception, it leaves
// SPI alone: the transaction abort that follows cleans SPI up (AtEOXact_SPI), and calling
// SPI_finish after a failed SPI call could raise again.
class SpiConnection {
public:
	SpiConnection();
	~SpiConnection();
	SpiConnection(const SpiConnection &) = delete;
	SpiConnection &operator=(const SpiConnection &) = delete;

private:
	int uncaught_at_start_;
};

// SpiArg is one parameter of a statement: its type and value (nullopt: SQL NULL).
struct SpiArg {
	Oid type;
	std::optional<Datum> value;
};

// SpiPlan is a prepared statement kept for the life of the process (SPI_keepplan). generic: always
// the generic plan (CURSOR_OPT_GENERIC_PLAN), never one planned for the values at hand: for statements
// that find rows by key = ANY($n), whose custom plans for a few hundred keys choose a sequential scan
// of the whole table over as many index probes.
class SpiPlan {
public:
	SpiPlan() = default;
	// SpiPlan prepares sql; generic asks for the generic plan from the first run on (a custom plan
	// folds the parameters into the plan: a copy of every value, 8 MiB for an 8 MiB text).
	SpiPlan(const std::string &sql, const std::vector<Oid> &types, bool generic = false);
	SpiPlan(SpiPlan &&other) noexcept;
	SpiPlan &operator=(SpiPlan &&other) noexcept;
	SpiPlan(const SpiPlan &) = delete;
	SpiPlan &operator=(const SpiPlan &) = delete;
	~SpiPlan();

	// Execute runs the plan with values/nulls (nulls: 'n' for NULL, ' ' otherwise); returns the
	// number of rows processed.
	uint64 Execute(const Datum *values, const char *nulls, bool read_only = false, long limit = 0) const;
	bool Valid() const { return plan_ != nullptr; }

private:
	SPIPlanPtr plan_ = nullptr;
};

// SpiExecute runs sql once with args and returns the number of rows processed; the result rows are
// in SPI_tuptable until the next SPI call.
uint64 SpiExecute(const std::string &sql, const std::vector<SpiArg> &args = {}, bool read_only = false);

// SpiText returns column (1-based) of result row as text, nullopt for NULL.
std::optional<std::string> SpiText(uint64 row, int column);

// SpiDatum returns column (1-based) of result row as a Datum (valid until SPI_finish), nullopt for NULL.
std::optional<Datum> SpiDatum(uint64 row, int column);

} // namespace mongo_river::pg
