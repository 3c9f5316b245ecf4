// uri.cpp: parse MongoDB URIs with libmongoc and redact their passwords.
#include "mongo_river/mongo/uri.hpp"

#include "mongo_river/error.hpp"

#include <cctype>
#include <utility>

namespace mongo_river::mongo {

namespace {

// PasswordSpan finds the password inside a URI's userinfo: [first, last) or an empty span. It
// agrees with libmongoc 1.23 (mongoc_uri_parse): the part before the first '/' after the scheme
// holds the userinfo and the hosts; the userinfo ends at its FIRST '@' and the password starts after
// the userinfo's first ':'. So a password may hold '?' (libmongoc accepts it), never '/', ':' or a
// raw '@'. A URI libmongoc would refuse (a '/' in the password, ...) falls back to the last '@'
// before the first '?', so that its error message does not show the password either.
std::pair<std::string::size_type, std::string::size_type> PasswordSpan(const std::string &uri) {
	const auto none = std::make_pair(std::string::npos, std::string::npos);
	std::string::size_type scheme_end = uri.find("://");
	if (scheme_end == std::string::npos)
		return none;
	std::string::size_type start = scheme_end + 3;
	std::string::size_type slash = uri.find('/', start);
	std::string::size_type at = uri.find('@', start);
	if (at == std::string::npos || (slash != std::string::npos && at > slash)) {
		std::string::size_type query = uri.find('?', start);
		at = uri.rfind('@', query == std::string::npos ? std::string::npos : query);
		if (at == std::string::npos || at < start || (query != std::string::npos && at > query))
			return none;
	}
	std::string::size_type colon = uri.find(':', start);
	if (colon == std::string::npos || colon > at)
		return none;
	return {colon + 1, at};
}

// IsSecretOption tells whether a URI option's value is a secret (compared case-insensitively, as
// libmongoc does): the TLS key's password (and its old ssl name) and authMechanismProperties (AWS
// session tokens, ...).
bool IsSecretOption(std::string key) {
	for (char &c : key)
		c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	return key == "tlscertificatekeyfilepassword" || key == "sslclientcertificatekeypassword" ||
		   key == "authmechanismproperties";
}

} // namespace

std::string RedactUri(const std::string &uri) {
	auto [first, last] = PasswordSpan(uri);
	std::string redacted = uri;
	std::string::size_type options_from = 0;
	if (first != std::string::npos) {
		redacted = uri.substr(0, first) + "****" + uri.substr(last);
		options_from = first + 4;
	}
	// Options: after the first '?' past the userinfo, separated by '&' (or ';').
	std::string::size_type query = redacted.find('?', options_from);
	if (query == std::string::npos)
		return redacted;
	std::string out = redacted.substr(0, query + 1);
	std::string::size_type at = query + 1;
	while (at <= redacted.size()) {
		std::string::size_type end = redacted.find_first_of("&;", at);
		if (end == std::string::npos)
			end = redacted.size();
		std::string option = redacted.substr(at, end - at);
		std::string::size_type equals = option.find('=');
		if (equals != std::string::npos && IsSecretOption(option.substr(0, equals)))
			option = option.substr(0, equals + 1) + "****";
		out += option;
		if (end < redacted.size())
			out += redacted[end];
		at = end + 1;
	}
	return out;
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
