// spi.cpp: SPI wrappers that turn PostgreSQL errors into C++ exceptions.
#include "mongo_river/pg/spi.hpp"

#include <utility>

#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "access/xact.h"
}

namespace mongo_river::pg {

SpiConnection::SpiConnection() : uncaught_at_start_(std::uncaught_exceptions()) {
	Call([] {
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "mongo_river: SPI_connect failed");
	});
}

SpiConnection::~SpiConnection() {
	if (std::uncaught_exceptions() > uncaught_at_start_)
		return;
	try {
		Call([] { SPI_finish(); });
	} catch (...) {
		// A destructor must not throw; the transaction's end cleans SPI up.
	}
}

SpiPlan::SpiPlan(const std::string &sql, const std::vector<Oid> &types, bool generic) {
	plan_ = Call([&] {
		SPIPlanPtr plan = SPI_prepare_cursor(sql.c_str(), int(types.size()), const_cast<Oid *>(types.data()),
											 generic ? CURSOR_OPT_GENERIC_PLAN : 0);
		if (!plan)
			elog(ERROR, "mongo_river: SPI_prepare failed (%s) for: %s", SPI_result_code_string(SPI_result),
				 sql.c_str());
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "mongo_river: SPI_keepplan failed");
		return plan;
	});
}

SpiPlan::SpiPlan(SpiPlan &&other) noexcept : plan_(std::exchange(other.plan_, nullptr)) {}

SpiPlan &SpiPlan::operator=(SpiPlan &&other) noexcept {
	std::swap(plan_, other.plan_);
	return *this;
}

SpiPlan::~SpiPlan() {
	// Freeing a plan needs a transaction; outside one (a worker exiting) the process's end frees it.
	if (plan_ && IsTransactionState())
		SPI_freeplan(plan_);
}

uint64 SpiPlan::Execute(const Datum *values, const char *nulls, bool read_only, long limit) const {
	return Call([&] {
		int rc = SPI_execute_plan(plan_, const_cast<Datum *>(values), nulls, read_only, limit);
		if (rc < 0)
			elog(ERROR, "mongo_river: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
		return SPI_processed;
	});
}

uint64 SpiExecute(const std::string &sql, const std::vector<SpiArg> &args, bool read_only) {
	std::vector<Oid> types;
	std::vector<Datum> values;
	std::string nulls;
	for (const SpiArg &arg : args) {
		types.push_back(arg.type);
		values.push_back(arg.value.value_or(Datum(0)));
		nulls.push_back(arg.value ? ' ' : 'n');
	}
	return Call([&] {
		int rc = SPI_execute_with_args(sql.c_str(), int(args.size()), types.data(), values.data(), nulls.c_str(),
									   read_only, 0);
		if (rc < 0)
			elog(ERROR, "mongo_river: SPI failed (%s) for: %s", SPI_result_code_string(rc), sql.c_str());
		return SPI_processed;
	});
}

// CheckRow raises an internal error instead of reading past the end of the last result.
static void CheckRow(uint64 row) {
	if (!SPI_tuptable || row >= SPI_processed)
		Call([&] {
			elog(ERROR, "mongo_river: row %lu read of a result with %lu rows", (unsigned long)row,
				 (unsigned long)SPI_processed);
		});
}

std::optional<Datum> SpiDatum(uint64 row, int column) {
	CheckRow(row);
	bool isnull = true;
	Datum value = Call([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &isnull); });
	if (isnull)
		return std::nullopt;
	return value;
}

std::optional<std::string> SpiText(uint64 row, int column) {
	CheckRow(row);
	char *text = Call([&] { return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column); });
	if (!text)
		return std::nullopt;
	std::string result(text);
	pfree(text);
	return result;
}

} // namespace mongo_river::pg
