// numbers.cpp: decimal and UUID parsing, number and time formatting for conversions.
#include <charconv>
#include <cmath>
#include <cstdio>

#include "internal.hpp"

namespace mongo_river::convert::internal {

namespace {

// EqualsIgnoreCase compares ASCII strings case-insensitively.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
	if (a.size() != b.size())
		return false;
	for (std::size_t i = 0; i < a.size(); ++i) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = static_cast<char>(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = static_cast<char>(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

// HexValue returns the value of a hex digit, or -1.
int HexValue(char c) {
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

} // namespace

bool ParseDecimal(std::string_view s, Decimal *out) {
	Decimal d;
	std::size_t i = 0;
	if (i < s.size() && (s[i] == '+' || s[i] == '-'))
		d.negative = s[i++] == '-';
	std::string_view rest = s.substr(i);
	if (EqualsIgnoreCase(rest, "nan")) {
		d.nan = i == 0;
		*out = d;
		return i == 0;
	}
	if (EqualsIgnoreCase(rest, "infinity") || EqualsIgnoreCase(rest, "inf")) {
		d.infinite = true;
		*out = d;
		return true;
	}
	std::size_t int_digits = 0, frac_digits = 0;
	std::string digits;
	while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
		digits.push_back(s[i++]);
		++int_digits;
	}
	if (i < s.size() && s[i] == '.') {
		++i;
		while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
			digits.push_back(s[i++]);
			++frac_digits;
		}
	}
	if (int_digits + frac_digits == 0)
		return false;
	std::int64_t exponent = 0;
	if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
		++i;
		bool negative = false;
		if (i < s.size() && (s[i] == '+' || s[i] == '-'))
			negative = s[i++] == '-';
		std::size_t start = i;
		while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
			if (exponent < 100000000)
				exponent = exponent * 10 + (s[i] - '0');
			++i;
		}
		if (i == start)
			return false;
		exponent = negative ? -exponent : exponent;
	}
	if (i != s.size())
		return false;
	std::size_t first = digits.find_first_not_of('0');
	d.digits = first == std::string::npos ? std::string() : digits.substr(first);
	d.exponent = exponent - static_cast<std::int64_t>(frac_digits);
	*out = d;
	return true;
}

IntegerStatus DecimalToInt64(const Decimal &decimal, std::int64_t *out) {
	if (decimal.nan || decimal.infinite)
		return IntegerStatus::kNotFinite;
	std::string digits = decimal.digits;
	std::int64_t exponent = decimal.exponent;
	while (exponent < 0 && !digits.empty() && digits.back() == '0') {
		digits.pop_back();
		++exponent;
	}
	if (digits.empty()) {
		*out = 0;
		return IntegerStatus::kOk;
	}
	if (exponent < 0)
		return IntegerStatus::kFractional;
	if (static_cast<std::int64_t>(digits.size()) + exponent > 19)
		return IntegerStatus::kOutOfRange;
	digits.append(static_cast<std::size_t>(exponent), '0');
	unsigned __int128 magnitude = 0;
	for (char c : digits)
		magnitude = magnitude * 10 + static_cast<unsigned>(c - '0');
	unsigned __int128 limit = decimal.negative ? (static_cast<unsigned __int128>(INT64_MAX) + 1) : INT64_MAX;
	if (magnitude > limit)
		return IntegerStatus::kOutOfRange;
	*out = decimal.negative ? static_cast<std::int64_t>(-static_cast<__int128>(magnitude))
							: static_cast<std::int64_t>(magnitude);
	return IntegerStatus::kOk;
}

bool ParseUuid(std::string_view s, std::uint8_t *bytes) {
	if (s.size() == 38 && s.front() == '{' && s.back() == '}')
		s = s.substr(1, 36);
	bool hyphenated = s.size() == 36;
	if (!hyphenated && s.size() != 32)
		return false;
	std::size_t n = 0;
	for (std::size_t i = 0; i < s.size(); ++i) {
		if (hyphenated && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return false;
			continue;
		}
		int v = HexValue(s[i]);
		if (v < 0)
			return false;
		if (n % 2 == 0)
			bytes[n / 2] = static_cast<std::uint8_t>(v << 4);
		else
			bytes[n / 2] |= static_cast<std::uint8_t>(v);
		++n;
	}
	return n == 32;
}

std::string FormatDouble(double d) {
	if (std::isnan(d))
		return "NaN";
	if (std::isinf(d))
		return d > 0 ? "Infinity" : "-Infinity";
	char buffer[64];
	auto result = std::to_chars(buffer, buffer + sizeof buffer, d);
	return std::string(buffer, result.ptr);
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
	std::int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void CivilFromDays(std::int64_t days, std::int64_t *year, int *month, int *day) {
	std::int64_t z = days + 719468;
	std::int64_t era = FloorDiv(z, 146097);
	std::int64_t doe = z - era * 146097;
	std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	std::int64_t mp = (5 * doy + 2) / 153;
	*day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
	*month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
	*year = yoe + era * 400 + (*month <= 2 ? 1 : 0);
}

std::string FormatDate(std::int64_t days) {
	std::int64_t year;
	int month, day;
	CivilFromDays(days, &year, &month, &day);
	char buffer[64];
	bool bc = year <= 0;
	std::snprintf(buffer, sizeof buffer, "%04lld-%02d-%02d%s", static_cast<long long>(bc ? 1 - year : year), month, day,
				  bc ? " BC" : "");
	return buffer;
}

std::string FormatTimestamp(std::int64_t micros, bool iso, bool with_time_zone) {
	std::int64_t days = FloorDiv(micros, kMicrosPerDay);
	std::int64_t in_day = micros - days * kMicrosPerDay;
	std::int64_t year;
	int month, day;
	CivilFromDays(days, &year, &month, &day);
	int hour = static_cast<int>(in_day / 3600000000LL);
	int minute = static_cast<int>(in_day / 60000000LL % 60);
	int second = static_cast<int>(in_day / 1000000 % 60);
	int fraction = static_cast<int>(in_day % 1000000);
	char buffer[96];
	if (iso) {
		const char *format = (year >= 0 && year <= 9999) ? "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ"
														 : "%+07lld-%02d-%02dT%02d:%02d:%02d.%03dZ";
		std::snprintf(buffer, sizeof buffer, format, static_cast<long long>(year), month, day, hour, minute, second,
					  fraction / 1000);
		return buffer;
	}
	bool bc = year <= 0;
	int n = std::snprintf(buffer, sizeof buffer, "%04lld-%02d-%02d %02d:%02d:%02d",
						  static_cast<long long>(bc ? 1 - year : year), month, day, hour, minute, second);
	std::string text(buffer, static_cast<std::size_t>(n));
	if (fraction != 0) {
		std::snprintf(buffer, sizeof buffer, ".%06d", fraction);
		std::string digits(buffer);
		while (digits.back() == '0')
			digits.pop_back();
		text += digits;
	}
	if (with_time_zone)
		text += "+00";
	return bc ? text + " BC" : text;
}

std::string FormatUuid(const std::uint8_t *bytes) {
	static const char kHex[] = "0123456789abcdef";
	std::string text;
	for (int i = 0; i < 16; ++i) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			text.push_back('-');
		text.push_back(kHex[bytes[i] >> 4]);
		text.push_back(kHex[bytes[i] & 15]);
	}
	return text;
}

} // namespace mongo_river::convert::internal
