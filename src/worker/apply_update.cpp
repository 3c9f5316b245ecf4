// apply_update.cpp: update events without their document (mongo_river.apply_update_diffs): applied
// from their update descriptions where the mapping allows it (convert/update_plan.hpp), the changed
// columns written in place; otherwise, and whenever the row is missing, the document is looked up.
#include "river_worker_internal.hpp"

#include <set>

namespace mongo_river::worker::internal {

namespace {

// IsInterrupted tells whether error is about this process or the server rather than the row (see
// apply_batch.cpp's Interrupted): it ends the batch instead of falling back to a lookup.
bool IsInterrupted(const pg::PgError &error) {
	int code = error.Sqlstate();
	int category = ERRCODE_TO_CATEGORY(code);
	return category == ERRCODE_OPERATOR_INTERVENTION || category == ERRCODE_INSUFFICIENT_RESOURCES ||
		   category == ERRCODE_TRANSACTION_ROLLBACK || category == ERRCODE_SYSTEM_ERROR ||
		   code == ERRCODE_LOCK_NOT_AVAILABLE;
}

// Changes reads an update event's description as paths.
convert::UpdateChanges Changes(const mongo::ChangeEvent &event) {
	std::vector<std::pair<std::string, int64_t>> truncated;
	for (const mongo::TruncatedArray &array : event.truncated_arrays)
		truncated.emplace_back(array.field, array.new_size);
	return convert::ReadUpdateChanges(event.updated_fields.get(), event.removed_fields, truncated, event.exact_paths);
}

// MergeColumns sets columns into *into (a later change of a column replaces the earlier one).
void MergeColumns(std::vector<std::pair<std::size_t, convert::Value>> *into,
				  std::vector<std::pair<std::size_t, convert::Value>> columns) {
	for (auto &[index, value] : columns) {
		auto it = std::find_if(into->begin(), into->end(), [&](const auto &c) { return c.first == index; });
		if (it != into->end())
			it->second = std::move(value);
		else
			into->emplace_back(index, std::move(value));
	}
}

} // namespace

mongo::Bson RiverWorker::LookUp(const Mapped &mapped, const bson_value_t *id) {
	lookups_++;
	const catalog::MappingRow &row = mapped.writer->Row();
	// A change stream delivers majority-committed changes; an oplog tail sees the primary's latest.
	return source_->FindById(row.db, row.coll, id, river_.options.capture != "oplog");
}

void RiverWorker::LookUpUpdate(Mapped &mapped, const mongo::ChangeEvent &event, const bson_value_t *id,
							   const apply::ChangeInfo &change, bool isolate) {
	mongo::Bson current = LookUp(mapped, id);
	if (current) {
		ApplyDocument(mapped, *current, change, isolate);
		return;
	}
	if (mapped.writer->History() && !river_.options.dry_run) {
		try {
			mapped.writer->AppendBareVersion(mapped.writer->KeyFromId(id), change);
		} catch (const convert::ConversionError &e) {
			RejectOrStop(mapped, "update", nullptr, event.document_key.get(), e.Message());
		}
	}
}

void RiverWorker::ApplyUpdate(Mapped &mapped, const mongo::ChangeEvent &event, const bson_value_t *id,
							  const apply::ChangeInfo &change, bool isolate) {
	convert::UpdatePlan plan;
	// A collection being copied or resynced takes documents whole (its rows may not be there yet).
	if (Copying(mapped.phase))
		plan.lookup = "its collection is being copied";
	else
		plan = mapped.writer->Converter().PlanUpdate(Changes(event));
	convert::Value key;
	bool have_key = false;
	try {
		key = mapped.writer->KeyFromId(id);
		have_key = true;
	} catch (const convert::ConversionError &e) {
		plan.lookup = "its _id: " + e.Message(); // the lookup rejects the document with the reason
	}
	const bool batched = Batched(mapped, isolate);
	std::map<std::string, PendingWrite> *writes = batched ? &pending_[mapped.writer->Row().source] : nullptr;
	const std::string text = have_key ? convert::ValueText(key) : std::string();
	if (!plan.lookup.empty()) {
		ereport(DEBUG2, (errmsg_internal("mongo_river: river \"%s\": update of %s in \"%s\" needs its document: %s",
										 name_.c_str(), convert::DocumentIdText(event.document_key.get()).c_str(),
										 mapped.writer->Row().source.c_str(), plan.lookup.c_str())));
		if (!batched || !have_key) {
			LookUpUpdate(mapped, event, id, change, isolate);
			return;
		}
		// Read with the batch's other lookups when it is written: the document as it is then
		// includes this change and every earlier one, as an upsert needs.
		PendingWrite write;
		write.is_lookup = true;
		write.key = std::move(key);
		write.id = mongo::WrapValue("_id", id);
		(*writes)[text] = std::move(write);
		return;
	}
	diff_updates_++;
	if (river_.options.dry_run)
		return;
	if (mapped.writer->History()) {
		// The version this update makes: the latest one with its changes (none to start from, or
		// recorded already: from the document).
		if (!isolate) { // a refusal fails the batch, which is then applied change by change
			if (!mapped.writer->PatchVersion(key, plan.columns, change))
				LookUpUpdate(mapped, event, id, change, isolate);
			return;
		}
		bool written = false;
		std::optional<pg::PgError> error =
			pg::TrySubtransaction([&] { written = mapped.writer->PatchVersion(key, plan.columns, change); });
		if (error && IsInterrupted(*error))
			throw std::move(*error);
		if (error || !written)
			LookUpUpdate(mapped, event, id, change, isolate);
		return;
	}
	if (batched) {
		auto it = writes->find(text);
		if (it == writes->end()) {
			PendingWrite write;
			write.is_patch = true;
			write.key = std::move(key);
			write.columns = std::move(plan.columns);
			write.id = mongo::WrapValue("_id", id);
			writes->emplace(text, std::move(write));
		} else if (it->second.is_delete) {
			// Deleted, then updated (inserted again meanwhile outside what the batch shows): read it.
			PendingWrite write;
			write.is_lookup = true;
			write.key = std::move(key);
			write.id = mongo::WrapValue("_id", id);
			it->second = std::move(write);
		} else if (it->second.is_patch) {
			MergeColumns(&it->second.columns, std::move(plan.columns));
		} else if (!it->second.is_lookup) {           // a lookup will read the document with this change
			for (auto &[index, value] : plan.columns) // the document's last write, with these changes
				it->second.document.row[index] = std::move(value);
		}
		return;
	}
	// Change by change (a batch PostgreSQL refused): a patch it refuses, or whose row is missing, is
	// applied from the document instead (which rejects it with the whole document if need be).
	std::vector<std::size_t> missing;
	std::optional<pg::PgError> error = pg::TrySubtransaction([&] {
		missing = mapped.writer->PatchRows({apply::MappingWriter::RowPatch{&key, &plan.columns}});
	});
	if (error && IsInterrupted(*error))
		throw std::move(*error);
	if (error || !missing.empty())
		LookUpUpdate(mapped, event, id, change, isolate);
}

void RiverWorker::FlushLookups(Mapped &mapped, std::map<std::string, PendingWrite> &writes,
							   std::vector<convert::Value> *deletes) {
	std::vector<apply::MappingWriter::RowPatch> patches;
	std::vector<PendingWrite *> patched;
	std::vector<PendingWrite *> wanted; // the writes whose documents are read
	for (auto &[text, write] : writes) {
		if (write.is_patch) {
			patches.push_back(apply::MappingWriter::RowPatch{&write.key, &write.columns});
			patched.push_back(&write);
		} else if (write.is_lookup) {
			wanted.push_back(&write);
		}
	}
	if (!patches.empty()) {
		// A patch whose key has no row (rejected earlier, or older than a copy: false mapping's cut):
		// the document as it is now gives it one.
		for (std::size_t index : mapped.writer->PatchRows(patches))
			wanted.push_back(patched[index]);
	}
	if (wanted.empty())
		return;
	mongo::Bson ids = mongo::NewBson(); // the array {"0": id, "1": id, ...}
	int64 count = 0;
	for (PendingWrite *write : wanted) {
		bson_iter_t iter;
		if (!write->id || !bson_iter_init_find(&iter, write->id.get(), "_id"))
			continue;
		const std::string index = std::to_string(count++);
		bson_append_iter(ids.get(), index.c_str(), -1, &iter);
	}
	lookups_ += count;
	apply::MappingWriter &writer = *mapped.writer;
	const bool resync = mapped.phase == "resync";
	std::set<std::string> present;
	// The documents are written as they come, a few MiB at a time, so that a batch of updates of large
	// documents never holds them all at once.
	std::deque<convert::ConvertedDocument> converted;
	size_t bytes = 0;
	auto write = [&] {
		std::vector<const convert::ConvertedDocument *> upserts;
		std::vector<convert::Value> seen;
		for (const convert::ConvertedDocument &document : converted) {
			upserts.push_back(&document);
			seen.push_back(document.key);
		}
		writer.UpsertBatch(upserts);
		if (resync)
			writer.RecordSeenBatch(name_, seen);
		converted.clear();
		bytes = 0;
	};
	auto each = [&](const bson_t &doc) {
		bson_iter_t iter;
		if (!bson_iter_init_find(&iter, &doc, "_id"))
			return;
		try {
			present.insert(convert::ValueText(writer.KeyFromId(bson_iter_value(&iter))));
		} catch (const convert::ConversionError &) {
			return; // not one of ours: every key looked up converted
		}
		convert::ConvertedDocument document = writer.Convert(doc);
		if (!document.errors.empty()) {
			std::string message;
			for (const convert::ConversionError &error : document.errors)
				message += (message.empty() ? "" : "; ") + error.Message();
			RejectOrStop(mapped, "update", &doc, nullptr, message);
			return;
		}
		converted.push_back(std::move(document));
		bytes += doc.len;
		if (bytes >= mongo::kMaxBatchBytes)
			write();
	};
	using Each = decltype(each);
	// A change stream delivers majority-committed changes; an oplog tail sees the primary's latest.
	source_->FindByIds(
		writer.Row().db, writer.Row().coll, ids.get(), river_.options.capture != "oplog",
		[](const bson_t *doc, void *data) { (*static_cast<Each *>(data))(*doc); }, &each);
	write();
	// A lookup whose document is gone: the source deleted it since (its delete follows, or came
	// before an insert the batch does not show); the row goes now.
	for (PendingWrite *pending : wanted)
		if (pending->is_lookup && !present.count(convert::ValueText(pending->key)))
			deletes->push_back(pending->key);
}

} // namespace mongo_river::worker::internal
