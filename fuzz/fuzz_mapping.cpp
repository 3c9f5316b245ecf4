// fuzz_mapping.cpp: libFuzzer target for the mapping parser, its serialiser and the mongo-connector import.
//
// Invariants checked: only mongo_river::Error escapes the parsers; a parsed mapping serialises to
// JSON that parses back to the same mapping and the same text; a DocumentConverter accepts every
// valid mapping; a successful import gives mappings that validate.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mongo_river/convert/row.hpp"
#include "mongo_river/convert/types.hpp"
#include "mongo_river/error.hpp"
#include "mongo_river/mapping/connector.hpp"
#include "mongo_river/mapping/mapping.hpp"

namespace {

// Check aborts (a crash libFuzzer reports) when an invariant does not hold.
void Check(bool condition) {
	if (!condition)
		std::abort();
}

// FuzzMapping runs the mapping parser and its round trip on text.
void FuzzMapping(const std::string &text) {
	namespace mapping = mongo_river::mapping;
	try {
		mapping::Mapping parsed = mapping::ParseMapping(text);
		std::string canonical = mapping::SerializeMapping(parsed);
		mapping::Mapping again = mapping::ParseMapping(canonical);
		Check(again == parsed);
		Check(mapping::SerializeMapping(again) == canonical);
		mongo_river::convert::DocumentConverter converter(parsed);
		Check(!converter.Layout().empty());
	} catch (const mongo_river::Error &) {
	}
}

// FuzzImport runs the mongo-connector import on text.
void FuzzImport(const std::string &text) {
	namespace mapping = mongo_river::mapping;
	try {
		for (const mapping::ImportedCollection &imported : mapping::ImportConnectorMappings(text)) {
			mapping::ValidateMapping(imported.mapping);
			Check(mapping::ParseMapping(mapping::SerializeMapping(imported.mapping)) == imported.mapping);
		}
	} catch (const mongo_river::Error &) {
	}
}

// FuzzSmallParsers runs the type classifier, target and index parsers on text.
void FuzzSmallParsers(const std::string &text) {
	mongo_river::convert::TargetType type = mongo_river::convert::ClassifyType(text);
	(void)type.Name();
	(void)mongo_river::convert::IsPlausibleTypeName(text);
	try {
		mongo_river::mapping::ParseTarget(text);
	} catch (const mongo_river::Error &) {
	}
	try {
		mongo_river::mapping::ParseIndexDefinition(text);
	} catch (const mongo_river::Error &) {
	}
}

} // namespace

// LLVMFuzzerTestOneInput feeds one input to every parser.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
	std::string text(reinterpret_cast<const char *>(data), size);
	FuzzMapping(text);
	FuzzImport(text);
	if (size < 512)
		FuzzSmallParsers(text);
	return 0;
}
