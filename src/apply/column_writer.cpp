// column_writer.cpp: convert::Value -> Datum, without text round trips for the common types.
#include <cstring>
#include <variant>
#include <vector>

#include "mongo_river/apply/column_writer.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/pg/boundary.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace mongo_river::apply {

namespace {

// kUnixEpochInPgMicros is 1970-01-01 in PostgreSQL's timestamp encoding (microseconds since 2000-01-01).
constexpr int64 kUnixEpochInPgMicros = int64(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
constexpr int32 kUnixEpochInPgDays = POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE;

// InputDatum runs the column's input function on text (with the column's typmod).
Datum InputDatum(const std::string &text, const ColumnType &column) {
	return pg::Call([&] {
		return InputFunctionCall(const_cast<FmgrInfo *>(&column.input), const_cast<char *>(text.c_str()),
								 column.input_param, column.typmod);
	});
}

// ScalarDatum converts a non-array value for a column (or an array element) of type `type`.
Datum ScalarDatum(const convert::Value &value, const ColumnType &column, Oid type) {
	const auto &v = value.v;
	if (const auto *b = std::get_if<bool>(&v))
		return BoolGetDatum(*b);
	if (const auto *i = std::get_if<convert::Int>(&v)) {
		if (type == INT2OID)
			return Int16GetDatum(int16(i->value));
		if (type == INT4OID)
			return Int32GetDatum(int32(i->value));
		if (type == INT8OID)
			return Int64GetDatum(i->value);
		return InputDatum(std::to_string(i->value), column);
	}
	if (const auto *f = std::get_if<convert::Float>(&v)) {
		if (type == FLOAT4OID)
			return Float4GetDatum(float4(f->value));
		if (type == FLOAT8OID)
			return Float8GetDatum(f->value);
		throw Error(sqlstate::kDatatypeMismatch, "a floating-point value cannot be stored in this column");
	}
	if (const auto *n = std::get_if<convert::Numeric>(&v))
		return InputDatum(n->text, column);
	if (const auto *t = std::get_if<convert::Text>(&v)) {
		if (type == TEXTOID)
			return pg::Call(
				[&] { return PointerGetDatum(cstring_to_text_with_len(t->value.data(), int(t->value.size()))); });
		return InputDatum(t->value, column);
	}
	if (const auto *in = std::get_if<convert::Input>(&v))
		return InputDatum(in->text, column);
	if (const auto *ts = std::get_if<convert::Timestamp>(&v)) {
		Timestamp pg_ts = ts->micros - kUnixEpochInPgMicros;
		Datum datum = TimestampGetDatum(pg_ts);
		if (column.typmod >= 0 && (type == TIMESTAMPOID || type == TIMESTAMPTZOID))
			datum = pg::Call([&] {
				return DirectFunctionCall2(type == TIMESTAMPOID ? timestamp_scale : timestamptz_scale, datum,
										   Int32GetDatum(column.typmod));
			});
		return datum;
	}
	if (const auto *d = std::get_if<convert::Date>(&v))
		return DateADTGetDatum(DateADT(d->days - kUnixEpochInPgDays));
	if (const auto *u = std::get_if<convert::Uuid>(&v)) {
		return pg::Call([&] {
			pg_uuid_t *uuid = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
			std::memcpy(uuid->data, u->bytes.data(), UUID_LEN);
			return UUIDPGetDatum(uuid);
		});
	}
	if (const auto *bytes = std::get_if<convert::Bytes>(&v)) {
		return pg::Call([&] {
			bytea *result = static_cast<bytea *>(palloc(VARHDRSZ + bytes->data.size()));
			SET_VARSIZE(result, VARHDRSZ + bytes->data.size());
			std::memcpy(VARDATA(result), bytes->data.data(), bytes->data.size());
			return PointerGetDatum(result);
		});
	}
	if (const auto *json = std::get_if<convert::JsonText>(&v)) {
		if (type == JSONBOID)
			return pg::Call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(json->text.c_str())); });
		return InputDatum(json->text, column);
	}
	throw Error(sqlstate::kInternalError, "mongo_river: unexpected value kind for a scalar column");
}

} // namespace

std::string DomainArrayType(const ColumnType &column) {
	if (!OidIsValid(column.domain) || !OidIsValid(column.element))
		return {};
	const char *name = pg::Call([&]() -> const char * {
		int32 typmod = -1;
		const Oid base = getBaseTypeAndTypmod(column.domain, &typmod);
		HeapTuple tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(base));
		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for type %u", base);
		const Form_pg_type form = (Form_pg_type)GETSTRUCT(tuple);
		// Only a true array type: a varlena subscripted as an array that is its element's array type
		// (pg_type.typarray). int2vector and oidvector have elements and array subscripting too, but
		// are types of their own (own input, lower bound 0, no NULLs): not int2's or oid's array type.
		const bool array = IsTrueArrayType(form) && form->typlen == -1 && get_array_type(form->typelem) == base;
		ReleaseSysCache(tuple);
		return array ? format_type_extended(base, typmod, FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY)
					 : nullptr;
	});
	return name ? std::string(name) : std::string();
}

void CheckDomainNull(const ColumnType &column) {
	if (OidIsValid(column.domain))
		pg::Call([&] { domain_check(Datum(0), true, column.domain, nullptr, CurrentMemoryContext); });
}

ColumnType LookupColumnType(Oid relation, const std::string &column) {
	ColumnType result;
	pg::Call([&] {
		HeapTuple tuple = SearchSysCacheAttName(relation, column.c_str());
		if (!HeapTupleIsValid(tuple))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist", column.c_str(), get_rel_name(relation)),
					 errhint("The mapped table was altered; map the collection again or restore the column.")));
		Form_pg_attribute attribute = (Form_pg_attribute)GETSTRUCT(tuple);
		result.type = attribute->atttypid;
		result.typmod = attribute->atttypmod;
		ReleaseSysCache(tuple);
		// A domain: NULL is checked against it; over an array, its values are built as arrays of the
		// base's elements (with the base's modifier: varchar(3)[]), then checked (ToDatum).
		int32 base_typmod = result.typmod;
		const Oid base = getBaseTypeAndTypmod(result.type, &base_typmod);
		if (base != result.type)
			result.domain = result.type;
		result.element = get_element_type(base);
		if (OidIsValid(result.element)) {
			if (OidIsValid(result.domain))
				result.typmod = base_typmod;
			Oid whole_function;
			getTypeInputInfo(result.type, &whole_function, &result.whole_param);
			fmgr_info_cxt(whole_function, &result.whole_input, TopMemoryContext);
		}
		Oid input_type = OidIsValid(result.element) ? result.element : result.type;
		Oid input_function;
		getTypeInputInfo(input_type, &input_function, &result.input_param);
		fmgr_info_cxt(input_function, &result.input, TopMemoryContext);
		if (OidIsValid(result.element))
			get_typlenbyvalalign(result.element, &result.elem_len, &result.elem_byval, &result.elem_align);
	});
	return result;
}

Datum ArrayDatum(Datum *elements, bool *nulls, size_t count, const ColumnType &column) {
	int dims[1] = {int(count)};
	int lbs[1] = {1};
	Datum built = count == 0
					  ? PointerGetDatum(construct_empty_array(column.element))
					  : PointerGetDatum(construct_md_array(elements, nulls, 1, dims, lbs, column.element,
														   column.elem_len, column.elem_byval, column.elem_align));
	if (OidIsValid(column.domain))
		domain_check(built, false, column.domain, nullptr, CurrentMemoryContext);
	return built;
}

Datum ToDatum(const convert::Value &value, const ColumnType &column, bool *isnull) {
	*isnull = value.IsNull();
	if (*isnull) {
		CheckDomainNull(column);
		return Datum(0);
	}
	const auto *array = std::get_if<convert::Array>(&value.v);
	if (!array && OidIsValid(column.element)) {
		// One value for an array type (or int2vector, oidvector, a domain over an array): the type's
		// own input reads its text, as COPY does (the element's input would make a Datum of another
		// type: review 26, a crash).
		const std::string text = convert::ValueText(value);
		return pg::Call([&] {
			return InputFunctionCall(const_cast<FmgrInfo *>(&column.whole_input), const_cast<char *>(text.c_str()),
									 column.whole_param, column.typmod);
		});
	}
	if (!array)
		return ScalarDatum(value, column, column.type);
	if (!OidIsValid(column.element))
		throw Error(sqlstate::kDatatypeMismatch, "an array value cannot be stored in a column that is not an array");
	std::vector<Datum> elements(array->elements.size());
	std::vector<bool> nulls(array->elements.size());
	for (size_t i = 0; i < array->elements.size(); i++) {
		nulls[i] = array->elements[i].IsNull();
		elements[i] = nulls[i] ? Datum(0) : ScalarDatum(array->elements[i], column, column.element);
	}
	return pg::Call([&] {
		bool *null_flags = static_cast<bool *>(palloc(sizeof(bool) * (elements.size() + 1)));
		for (size_t i = 0; i < elements.size(); i++)
			null_flags[i] = nulls[i];
		return ArrayDatum(elements.data(), null_flags, elements.size(), column);
	});
}

} // namespace mongo_river::apply
