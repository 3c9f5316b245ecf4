// apply_update.cpp: update events without their document (mongo_river.apply_update_diffs): applied
// from their update descriptions where the mapping allows it (convert/update_plan.hpp), the changed
// columns written in place; otherwise, and whenever the row is missing, the document is looked up.
#include "river_worker_internal.hpp"

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
	// A collection being copied or resynced keeps the lookups (its rows may not be there yet, and a
	// resync records every key it writes).
	if (Copying(mapped.phase)) {
		LookUpUpdate(mapped, event, id, change, isolate);
		return;
	}
	convert::UpdatePlan plan = mapped.writer->Converter().PlanUpdate(Changes(event));
	convert::Value key;
	if (plan.lookup.empty()) {
		try {
			key = mapped.writer->KeyFromId(id);
		} catch (const convert::ConversionError &e) {
			plan.lookup = "its _id: " + e.Message(); // the lookup rejects the document with the reason
		}
	}
	if (!plan.lookup.empty()) {
		ereport(DEBUG2, (errmsg_internal("mongo_river: river \"%s\": update of %s in \"%s\" looked up: %s",
										 name_.c_str(), IdText(event.document_key.get()).c_str(),
										 mapped.writer->Row().source.c_str(), plan.lookup.c_str())));
		LookUpUpdate(mapped, event, id, change, isolate);
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
	if (Batched(mapped, isolate)) {
		auto &writes = pending_[mapped.writer->Row().source];
		const std::string text = convert::ValueText(key);
		auto it = writes.find(text);
		if (it == writes.end()) {
			PendingWrite write;
			write.is_patch = true;
			write.key = std::move(key);
			write.columns = std::move(plan.columns);
			write.id = mongo::WrapValue("_id", id);
			writes.emplace(text, std::move(write));
		} else if (it->second.is_delete) {
			LookUpUpdate(mapped, event, id, change, isolate); // deleted, then updated: read it again
		} else if (it->second.is_patch) {
			MergeColumns(&it->second.columns, std::move(plan.columns));
		} else {
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

void RiverWorker::FlushPatches(Mapped &mapped, std::map<std::string, PendingWrite> &writes,
							   std::vector<const convert::ConvertedDocument *> *upserts,
							   std::vector<convert::Value> *seen, std::deque<convert::ConvertedDocument> *storage) {
	std::vector<apply::MappingWriter::RowPatch> patches;
	std::vector<PendingWrite *> owners;
	for (auto &[text, write] : writes) {
		if (!write.is_patch)
			continue;
		patches.push_back(apply::MappingWriter::RowPatch{&write.key, &write.columns});
		owners.push_back(&write);
	}
	if (patches.empty())
		return;
	for (std::size_t index : mapped.writer->PatchRows(patches)) {
		// No row for this key (rejected earlier, or older than a copy: false mapping's cut): the
		// document as it is now gives it one.
		const PendingWrite &write = *owners[index];
		bson_iter_t iter;
		if (!write.id || !bson_iter_init_find(&iter, write.id.get(), "_id"))
			continue;
		mongo::Bson current = LookUp(mapped, bson_iter_value(&iter));
		if (!current)
			continue; // deleted since: its delete follows
		convert::ConvertedDocument converted = mapped.writer->Convert(*current);
		if (!converted.errors.empty()) {
			std::string message;
			for (const convert::ConversionError &error : converted.errors)
				message += (message.empty() ? "" : "; ") + error.Message();
			RejectOrStop(mapped, "update", current.get(), nullptr, message);
			continue;
		}
		storage->push_back(std::move(converted));
		upserts->push_back(&storage->back());
		seen->push_back(storage->back().key);
	}
}

} // namespace mongo_river::worker::internal
