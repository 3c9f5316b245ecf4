// row.cpp: convert whole documents by a mapping into root and child rows, collecting every error.
#include "mongo_river/convert/row.hpp"

#include "mongo_river/convert/convert.hpp"
#include "internal.hpp"

namespace mongo_river::convert {

namespace {

// WithColumn returns error with the column (and table) named in its detail, so a reject says which
// column refused the value.
ConversionError WithColumn(const ConversionError &error, const std::string &column, const std::string &table) {
	std::string detail = "column \"" + column + "\"" + (table.empty() ? "" : " of table \"" + table + "\"");
	if (!error.Detail().empty())
		detail += "; " + error.Detail();
	return ConversionError(error.Sqlstate(), error.Message(), error.Path(), error.BsonType(), detail, error.Hint());
}

// JoinPath appends a relative path to a parent path for messages ("comments.0" + "user").
std::string JoinPath(const std::string &parent, const mapping::Path &path) {
	std::string text = mapping::PathText(path);
	return parent.empty() ? text : parent + "." + text;
}

// ConvertColumn converts one mapped column of container (a document) per its format.
Value ConvertColumn(const mapping::Column &column, const TargetType &target, const bson_t &container,
					const std::string &path) {
	bson_iter_t iter;
	bool found = FindPath(container, column.path, &iter);
	return ConvertMappedValue(column, target, found ? bson_iter_value(&iter) : nullptr, path);
}

// ConvertElementSelf converts the element itself for a column whose path is "$".
Value ConvertElementSelf(const mapping::Column &column, const TargetType &target, const bson_value_t &element,
						 const std::string &path) {
	if (column.format == mapping::Format::kPresence)
		return Value{element.value_type != BSON_TYPE_NULL && element.value_type != BSON_TYPE_UNDEFINED};
	if (column.format == mapping::Format::kExtendedJson)
		return (element.value_type == BSON_TYPE_NULL || element.value_type == BSON_TYPE_UNDEFINED)
				   ? Value{}
				   : ConvertExtendedJson(element, target, path);
	return ConvertValue(element, target, path);
}

} // namespace

Value ConvertMappedValue(const mapping::Column &column, const TargetType &target, const bson_value_t *value,
						 const std::string &path) {
	const bool null = !value || value->value_type == BSON_TYPE_NULL || value->value_type == BSON_TYPE_UNDEFINED;
	if (column.format == mapping::Format::kPresence)
		return Value{!null};
	if (!value)
		return Value{};
	if (column.format == mapping::Format::kExtendedJson) {
		if (null)
			return Value{};
		return ConvertExtendedJson(*value, target, path);
	}
	return ConvertValue(*value, target, path);
}

DocumentConverter::DocumentConverter(mapping::Mapping mapping) : mapping_(std::move(mapping)) {
	mapping::ValidateMapping(mapping_);
	TableLayout root;
	for (std::size_t i = 0; i < mapping_.columns.size(); ++i) {
		const mapping::Column &column = mapping_.columns[i];
		bool is_pk = column.name == mapping_.pk;
		if (is_pk)
			pk_index_ = i;
		columns_.push_back({&column, ClassifyType(column.type), mapping::PathText(column.path)});
		root.columns.push_back({column.name, column.type, is_pk ? ColumnRole::kPrimaryKey : ColumnRole::kColumn});
	}
	std::vector<std::string> keys;
	for (CompiledColumn &compiled : columns_) {
		if (compiled.column->path.empty())
			continue;
		const std::string &first = compiled.column->path[0];
		compiled.top = std::find(keys.begin(), keys.end(), first) - keys.begin();
		if (compiled.top == keys.size())
			keys.push_back(first);
	}
	top_keys_ = TopKeys(std::move(keys));
	if (!mapping_.document.empty())
		root.columns.push_back({mapping_.document, "jsonb", ColumnRole::kDocument});
	root.primary_key = {mapping_.pk};
	layout_.push_back(std::move(root));
	CompileArrays(mapping_.arrays, 0, mapping_.columns[pk_index_].type, &arrays_);
}

namespace {

// FindCompiled returns the compiled array of layout table `table` among arrays (nested included).
template <typename Array> Array *FindCompiled(std::vector<Array> &arrays, std::size_t table) {
	for (Array &array : arrays) {
		if (array.table == table)
			return &array;
		if (Array *found = FindCompiled(array.children, table))
			return found;
	}
	return nullptr;
}

} // namespace

bool DocumentConverter::Retarget(std::size_t table, const std::string &column, const std::string &type) {
	std::vector<CompiledColumn> *columns = &columns_;
	if (table != 0) {
		CompiledArray *array = FindCompiled(arrays_, table);
		if (!array)
			return false;
		columns = &array->columns;
	}
	for (CompiledColumn &compiled : *columns)
		if (compiled.column->name == column) {
			compiled.target = ClassifyType(type);
			return true;
		}
	return false;
}

void DocumentConverter::CompileArrays(const std::vector<mapping::ArrayMapping> &arrays, int parent,
									  const std::string &fk_type, std::vector<CompiledArray> *out) {
	for (const mapping::ArrayMapping &array : arrays) {
		CompiledArray compiled{&array, layout_.size(), {}, {}};
		TableLayout table;
		table.table = array.table;
		table.parent = parent;
		table.columns.push_back({array.fk, fk_type, ColumnRole::kForeignKey});
		if (!array.position.empty())
			table.columns.push_back({array.position, "integer", ColumnRole::kPosition});
		if (!array.id.empty()) {
			table.columns.push_back({array.id, "text", ColumnRole::kGeneratedId});
			table.primary_key = {array.id};
		} else if (!array.position.empty()) {
			table.primary_key = {array.fk, array.position};
		}
		for (const mapping::Column &column : array.columns) {
			compiled.columns.push_back({&column, ClassifyType(column.type), mapping::PathText(column.path)});
			table.columns.push_back({column.name, column.type, ColumnRole::kColumn});
		}
		layout_.push_back(std::move(table));
		CompileArrays(array.arrays, static_cast<int>(compiled.table), "text", &compiled.children);
		out->push_back(std::move(compiled));
	}
}

ConvertedDocument DocumentConverter::Convert(const bson_t &document) const {
	ConvertedDocument result;
	ConvertInto(document, &result);
	return result;
}

void DocumentConverter::ConvertInto(const bson_t &document, ConvertedDocument *out) const {
	// Every field is written again; the vectors keep their storage, and text values (strings,
	// ObjectIds) overwrite the strings of the last document converted into *out (AssignText).
	ConvertedDocument &result = *out;
	result.errors.clear();
	result.children.resize(layout_.size() - 1);
	for (std::size_t i = 0; i < result.children.size(); ++i) {
		result.children[i].table = i + 1;
		result.children[i].rows.clear();
	}
	result.row.resize(columns_.size() + (mapping_.document.empty() ? 0 : 1));
	uint32_t offsets[TopKeys::kMaxKeys] = {};
	const bool located = top_keys_.Locate(document, offsets);
	for (std::size_t i = 0; i < columns_.size(); ++i) {
		const CompiledColumn &compiled = columns_[i];
		const std::string &path = compiled.path;
		bson_iter_t iter;
		const bool found =
			located ? top_keys_.FindPath(document, compiled.top, offsets[compiled.top], compiled.column->path, &iter)
					: FindPath(document, compiled.column->path, &iter);
		const bson_value_t *value = found ? bson_iter_value(&iter) : nullptr;
		Value &slot = result.row[i];
		try {
			const bool plain = value && compiled.column->format == mapping::Format::kDefault;
			if (!(plain && internal::AssignText(*value, compiled.target, path, &slot)))
				slot = i == pk_index_ ? ConvertPrimaryKey(value, *compiled.column, compiled.target, path)
									  : ConvertMappedValue(*compiled.column, compiled.target, value, path);
			if (i == pk_index_)
				result.key = slot;
		} catch (const ConversionError &error) {
			result.errors.push_back(WithColumn(error, compiled.column->name, {}));
			slot = Value();
			if (i == pk_index_)
				result.key = Value();
		}
	}
	if (!mapping_.document.empty()) {
		Value &slot = result.row.back();
		try {
			slot = Value{JsonText{DocumentJson(document), true}};
		} catch (const ConversionError &error) {
			result.errors.push_back(WithColumn(error, mapping_.document, {}));
			slot = Value();
		}
	}
	if (result.key.IsNull())
		return;
	for (const CompiledArray &array : arrays_)
		ConvertArray(array, document, {}, result.key, &result);
}

void DocumentConverter::ConvertArray(const CompiledArray &array, const bson_t &container,
									 const std::string &parent_path, const Value &parent_key,
									 ConvertedDocument *result) const {
	std::string path = JoinPath(parent_path, array.array->path);
	bson_iter_t iter;
	if (!FindPath(container, array.array->path, &iter) || BSON_ITER_HOLDS_NULL(&iter) ||
		BSON_ITER_HOLDS_UNDEFINED(&iter))
		return;
	const bson_value_t *value = bson_iter_value(&iter);
	bson_iter_t elements;
	if (value->value_type != BSON_TYPE_ARRAY || !bson_iter_recurse(&iter, &elements)) {
		result->errors.emplace_back(sqlstate::kDatatypeMismatch,
									"cannot convert " + BsonTypeName(value->value_type) + " at \"" + path +
										"\" to rows of table \"" + array.array->table + "\": expected an array",
									path, BsonTypeName(value->value_type),
									"array mapping \"" + array.array->name + "\"",
									"Map this field as a column (e.g. jsonb) if it is not always an array.");
		return;
	}
	std::size_t index = 0;
	while (bson_iter_next(&elements)) {
		ConvertElement(array, *bson_iter_value(&elements), path + "." + bson_iter_key(&elements), parent_key, index,
					   result);
		++index;
	}
}

void DocumentConverter::ConvertElement(const CompiledArray &array, const bson_value_t &element, const std::string &path,
									   const Value &parent_key, std::size_t index, ConvertedDocument *result) const {
	const mapping::ArrayMapping &mapping = *array.array;
	std::vector<Value> row;
	row.reserve(3 + array.columns.size());
	row.push_back(parent_key);
	if (!mapping.position.empty())
		row.push_back(Value{Int{static_cast<std::int64_t>(index), 4}});
	Value id;
	if (!mapping.id.empty()) {
		id = Value{Text{ValueText(parent_key) + "." + std::to_string(index)}};
		row.push_back(id);
	}
	bson_t element_document;
	bool is_document = element.value_type == BSON_TYPE_DOCUMENT &&
					   bson_init_static(&element_document, element.value.v_doc.data, element.value.v_doc.data_len);
	bool is_null = element.value_type == BSON_TYPE_NULL || element.value_type == BSON_TYPE_UNDEFINED;
	bool reported = false;
	for (const CompiledColumn &compiled : array.columns) {
		const mapping::Column &column = *compiled.column;
		bool self = column.path.size() == 1 && column.path[0] == mapping::kElementKey;
		std::string here = self ? path : path + "." + compiled.path;
		try {
			if (self)
				row.push_back(ConvertElementSelf(column, compiled.target, element, here));
			else if (is_document)
				row.push_back(ConvertColumn(column, compiled.target, element_document, here));
			else if (is_null || reported)
				row.push_back(column.format == mapping::Format::kPresence ? Value{false} : Value{});
			else
				throw ConversionError(sqlstate::kDatatypeMismatch,
									  "cannot convert " + BsonTypeName(element.value_type) + " at \"" + path +
										  "\" to a row of table \"" + mapping.table + "\": expected a document",
									  path, BsonTypeName(element.value_type), {},
									  "Use the path \"$\" to map array elements that are not documents.");
		} catch (const ConversionError &error) {
			reported = reported || (!self && !is_document);
			result->errors.push_back(WithColumn(error, column.name, mapping.table));
			row.emplace_back();
		}
	}
	result->children[array.table - 1].rows.push_back(std::move(row));
	if (is_document)
		for (const CompiledArray &child : array.children)
			ConvertArray(child, element_document, path, id, result);
}

} // namespace mongo_river::convert
