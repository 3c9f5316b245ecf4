// column_writer.hpp: converted values (convert::Value) -> Datums of one column's PostgreSQL type.
#pragma once

#include <string>

#include "mongo_river/convert/value.hpp"
#include "mongo_river/pg/postgres.hpp"

extern "C" {
#include "fmgr.h"
}

namespace mongo_river::apply {

// ColumnType is what a column's Datums are built from: its type and modifier, its input function
// (for Input values and typmod coercion), and for arrays the element type's storage.
struct ColumnType {
	Oid type = InvalidOid;
	int32 typmod = -1;
	Oid element = InvalidOid; // array columns (and domains over an array): the element type
	Oid domain = InvalidOid;  // a domain: NULL and built arrays are checked against it (domain_check)
	int16 elem_len = 0;
	bool elem_byval = false;
	char elem_align = 'i';
	FmgrInfo input; // the input function of type (arrays: of the element type)
	Oid input_param = InvalidOid;
	FmgrInfo whole_input; // arrays: the input function of the type itself (a value that is not an array)
	Oid whole_param = InvalidOid;
};

// DomainArrayType returns, for a column whose type is a domain over an array type, that array type's
// name ("character varying(3)[]", schema-qualified when not pg_catalog's), else "": what the
// converter converts its values to (DocumentConverter::Retarget).
std::string DomainArrayType(const ColumnType &column);

// CheckDomainNull raises the domain's error when column's type is a domain that refuses NULL.
void CheckDomainNull(const ColumnType &column);

// LookupColumnType reads the type of relation.column from the catalog (42703 if the column is gone).
ColumnType LookupColumnType(Oid relation, const std::string &column);

// ArrayDatum builds the one-dimensional array of count elements (nulls flags each) for an array
// column, checked against its domain when the column's type is a domain over an array. Calls
// PostgreSQL directly: run it inside pg::Call.
Datum ArrayDatum(Datum *elements, bool *nulls, size_t count, const ColumnType &column);

// ToDatum turns a converted value into a Datum of the column's type (palloc'd in the current
// memory context); isnull reports SQL NULL. Values the converter produced as text (Input, and
// Text for types with a modifier) go through the type's input function, so varchar(n), domains
// and enums are checked by PostgreSQL itself. PostgreSQL errors are thrown as pg::PgError.
Datum ToDatum(const convert::Value &value, const ColumnType &column, bool *isnull);

} // namespace mongo_river::apply
