// uri.cpp: parse MongoDB URIs with libmongoc and redact their passwords.
#include "mongo_river/mongo/uri.hpp"

#include "mongo_river/error.hpp"

namespace mongo_river::mongo {

namespace {

// PasswordSpan finds the password inside a URI's userinfo: [first, last) or an empty span.
std::pair<std::string::size_type, std::string::size_type> PasswordSpan(const std::string &uri) {
	const auto none = std::make_pair(std::string::npos, std::string::npos);
	std::string::size_type scheme_end = uri.find("://");
	if (scheme_end == std::string::npos)
		return none;
	std::string::size_type hosts_start = scheme_end + 3;
	std::string::size_type hosts_end = uri.find_first_of("/?", hosts_start);
	if (hosts_end == std::string::npos)
		hosts_end = uri.size();
	std::string::size_type at = uri.rfind('@', hosts_end - 1);
	if (at == std::string::npos || at < hosts_start)
		return none;
	std::string::size_type colon = uri.find(':', hosts_start);
	if (colon == std::string::npos || colon > at)
		return none;
	return {colon + 1, at};
}

} // namespace

std::string RedactUri(const std::string &uri) {
	auto [first, last] = PasswordSpan(uri);
	if (first == std::string::npos)
		return uri;
	return uri.substr(0, first) + "****" + uri.substr(last);
}

Uri ParseUri(const std::string &uri) {
	bson_error_t error;
	Uri parsed(mongoc_uri_new_with_error(uri.c_str(), &error));
	if (!parsed) {
		std::string detail = error.message;
		auto [first, last] = PasswordSpan(uri);
		if (first != std::string::npos && last > first &&
			detail.find(uri.substr(first, last - first)) != std::string::npos)
			detail = "libmongoc's message is not shown because it quotes the password";
		throw Error(sqlstate::kInvalidParameterValue, "invalid MongoDB URI \"" + RedactUri(uri) + "\"", detail,
					"Use the form mongodb://[user:password@]host[:port][,host...]/[?options] or mongodb+srv://...");
	}
	return parsed;
}

} // namespace mongo_river::mongo
