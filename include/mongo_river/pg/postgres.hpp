// postgres.hpp: the PostgreSQL headers, included the one way C++ code here may include them.
//
// Include this after the C++ standard and libmongoc headers: PostgreSQL's port.h redefines
// printf-family names as macros, which would break standard headers included after it.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}
