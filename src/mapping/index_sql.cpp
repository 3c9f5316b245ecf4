// index_sql.cpp: parse mongo-connector's "indices" SQL fragments into structured definitions.
#include <cctype>

#include "mongo_river/error.hpp"
#include "mongo_river/mapping/connector.hpp"

namespace mongo_river::mapping {

namespace {

// IndexTokens walks an index fragment: keywords, identifiers (quoted or not) and punctuation.
class IndexTokens {
public:
	explicit IndexTokens(std::string_view sql) : sql_(sql) {}

	// Keyword consumes word (any case) and returns whether it was there.
	bool Keyword(std::string_view word) {
		SkipSpace();
		std::size_t end = pos_;
		while (end < sql_.size() && (std::isalnum(static_cast<unsigned char>(sql_[end])) || sql_[end] == '_'))
			++end;
		if (end - pos_ != word.size())
			return false;
		for (std::size_t i = 0; i < word.size(); ++i)
			if (std::tolower(static_cast<unsigned char>(sql_[pos_ + i])) != word[i])
				return false;
		pos_ = end;
		return true;
	}

	// Identifier consumes a quoted or unquoted identifier (unquoted folded to lowercase); empty when none.
	std::string Identifier() {
		SkipSpace();
		std::string name;
		if (pos_ < sql_.size() && sql_[pos_] == '"') {
			for (++pos_; pos_ < sql_.size(); ++pos_) {
				if (sql_[pos_] == '"') {
					if (pos_ + 1 < sql_.size() && sql_[pos_ + 1] == '"') {
						name.push_back('"');
						++pos_;
						continue;
					}
					++pos_;
					return name;
				}
				name.push_back(sql_[pos_]);
			}
			return {};
		}
		while (pos_ < sql_.size() && (std::isalnum(static_cast<unsigned char>(sql_[pos_])) || sql_[pos_] == '_' ||
									  static_cast<unsigned char>(sql_[pos_]) >= 0x80)) {
			char c = sql_[pos_++];
			name.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);
		}
		if (!name.empty() && std::isdigit(static_cast<unsigned char>(name[0])))
			return {};
		return name;
	}

	// Punct consumes character c and returns whether it was there.
	bool Punct(char c) {
		SkipSpace();
		if (pos_ < sql_.size() && sql_[pos_] == c) {
			++pos_;
			return true;
		}
		return false;
	}

	// AtEnd tells whether only spaces and an optional ';' remain.
	bool AtEnd() {
		Punct(';');
		SkipSpace();
		return pos_ == sql_.size();
	}

private:
	void SkipSpace() {
		while (pos_ < sql_.size() && std::isspace(static_cast<unsigned char>(sql_[pos_])))
			++pos_;
	}

	std::string_view sql_;
	std::size_t pos_ = 0;
};

} // namespace

IndexDefinition ParseIndexDefinition(std::string_view sql) {
	auto refuse = [&sql](const std::string &why) {
		return Error(sqlstate::kInvalidParameterValue,
					 "unsupported index definition \"" + std::string(sql) + "\": " + why, {},
					 "Only [UNIQUE] INDEX name ON table(column, ...) is imported; create other indexes yourself.");
	};
	IndexTokens tokens(sql);
	IndexDefinition index;
	index.unique = tokens.Keyword("unique");
	if (!tokens.Keyword("index"))
		throw refuse("expected INDEX");
	index.name = tokens.Identifier();
	if (index.name.empty())
		throw refuse("expected the index name");
	if (!tokens.Keyword("on"))
		throw refuse("expected ON after the index name");
	index.table = tokens.Identifier();
	if (index.table.empty())
		throw refuse("expected the table name");
	if (tokens.Punct('.'))
		throw refuse("schema-qualified tables are not supported (the import's schema option decides)");
	if (!tokens.Punct('('))
		throw refuse("expected ( and a column list after the table name");
	do {
		std::string column = tokens.Identifier();
		if (column.empty())
			throw refuse("expected a column name (expressions, ASC/DESC and options are not supported)");
		index.columns.push_back(column);
	} while (tokens.Punct(','));
	if (!tokens.Punct(')'))
		throw refuse("expected , or ) in the column list (expressions, ASC/DESC and options are not supported)");
	if (!tokens.AtEnd())
		throw refuse("unexpected text after the column list (USING, WHERE, INCLUDE are not supported)");
	return index;
}

} // namespace mongo_river::mapping
