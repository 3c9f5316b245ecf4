// mongo-river-check-mapping: validate a mapping file offline, before deploying it.
//
//   tools/mongo-river-check-mapping FILE [--connector]
// FILE holds a mongo_river mapping (ARCHITECTURE.md §3), or with --connector a mongo-connector-postgresql
// mappings.json. Prints the problem and exits 1, or prints the normalised mapping(s) and exits 0
// (exit 2 for usage errors and unreadable files).
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "mongo_river/error.hpp"
#include "mongo_river/mapping/connector.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace {

// ReadFile returns a whole file's bytes, or false when it cannot be read.
bool ReadFile(const std::string &path, std::string *text) {
	std::ifstream in(path, std::ios::binary);
	if (!in)
		return false;
	std::ostringstream buffer;
	buffer << in.rdbuf();
	*text = buffer.str();
	return !in.bad();
}

// IndexesJson renders imported index definitions as a JSON array.
mongo_river::mapping::Json IndexesJson(const std::vector<mongo_river::mapping::IndexDefinition> &indexes) {
	using mongo_river::mapping::Json;
	Json list = Json::NewArray();
	for (const auto &index : indexes) {
		Json entry = Json::NewObject();
		entry.Set("name", Json::NewString(index.name));
		entry.Set("unique", Json::NewBool(index.unique));
		entry.Set("table", Json::NewString(index.table));
		Json columns = Json::NewArray();
		for (const std::string &column : index.columns)
			columns.Append(Json::NewString(column));
		entry.Set("columns", columns);
		list.Append(entry);
	}
	return list;
}

// Normalise parses text in the chosen format and returns the normalised JSON to print.
std::string Normalise(const std::string &text, bool connector) {
	namespace mapping = mongo_river::mapping;
	using mapping::Json;
	if (!connector)
		return mapping::SerializeMapping(mapping::ParseMapping(text), true);
	Json out = Json::NewArray();
	for (const mapping::ImportedCollection &imported : mapping::ImportConnectorMappings(text)) {
		Json entry = Json::NewObject();
		entry.Set("source", Json::NewString(imported.database + "." + imported.collection));
		entry.Set("target", Json::NewString(imported.table));
		entry.Set("mapping", mapping::MappingToJson(imported.mapping));
		entry.Set("indexes", IndexesJson(imported.indexes));
		out.Append(entry);
	}
	return out.Dump(true);
}

} // namespace

// main checks one file and reports as described at the top of this file.
int main(int argc, char **argv) {
	std::string file;
	bool connector = false;
	bool usage_ok = true;
	for (int i = 1; i < argc; ++i) {
		std::string arg = argv[i];
		if (arg == "--connector")
			connector = true;
		else if (file.empty() && !arg.empty() && arg[0] != '-')
			file = arg;
		else
			usage_ok = false;
	}
	if (file.empty() || !usage_ok) {
		std::cerr << "usage: mongo-river-check-mapping FILE [--connector]\n";
		return 2;
	}
	std::string text;
	if (!ReadFile(file, &text)) {
		std::cerr << "mongo-river-check-mapping: cannot read " << file << "\n";
		return 2;
	}
	try {
		std::cout << Normalise(text, connector) << "\n";
		return 0;
	} catch (const mongo_river::Error &e) {
		std::cout << file << ": ERROR " << e.Sqlstate() << ": " << e.Message() << "\n";
		if (!e.Detail().empty())
			std::cout << "DETAIL: " << e.Detail() << "\n";
		if (!e.Hint().empty())
			std::cout << "HINT: " << e.Hint() << "\n";
		return 1;
	}
}
