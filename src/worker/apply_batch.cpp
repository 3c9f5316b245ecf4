// apply_batch.cpp: a batch of changes into PostgreSQL: converted, reduced to each document's last
// change, written with multi-row statements and committed with the river's position; refused rows
// go to rejects (the batch is then retried change by change).
#include "river_worker_internal.hpp"

#include "mongo_river/mongo/reply_check.hpp"

namespace mongo_river::worker::internal {

namespace {

// Interrupted tells whether error is about this process or the server (a cancel, as stop() sends
// to a worker waiting for a lock, a shutdown, a deadlock, lack of resources), not about the
// document: such an error ends the batch (retried later) and never makes a reject.
bool Interrupted(const pg::PgError &error) {
	int code = error.Sqlstate();
	int category = ERRCODE_TO_CATEGORY(code);
	return category == ERRCODE_OPERATOR_INTERVENTION || category == ERRCODE_INSUFFICIENT_RESOURCES ||
		   category == ERRCODE_TRANSACTION_ROLLBACK || category == ERRCODE_SYSTEM_ERROR ||
		   code == ERRCODE_LOCK_NOT_AVAILABLE;
}

} // namespace

void RiverWorker::RejectOrStop(const Mapped &mapped, const char *operation, const bson_t *doc, const bson_t *key,
							   const std::string &error) {
	const std::string &source = mapped.writer->Row().source;
	if (river_.options.on_error == "stop")
		throw StopRiver(sqlstate::kDatatypeMismatch, "collection \"" + source + "\", document " +
														 convert::DocumentIdText(doc ? doc : key) + ": " + error);
	txn_rejects_[source]++;
	catalog::Reject reject;
	reject.source = source;
	reject.document_id = convert::DocumentIdText(doc ? doc : key);
	reject.has_id = HasId(doc ? doc : key);
	reject.operation = operation;
	if (doc) {
		try {
			reject.document_json = convert::DocumentJson(*doc);
		} catch (const Error &) {
			// jsonb cannot hold it (NUL characters, invalid UTF-8): raw keeps it.
		}
	}
	reject.raw = RawBytes(doc ? doc : key);
	reject.error = error;
	reject.replace_copy = mapped.phase == "resync" && reject.operation == "copy";
	if (!river_.options.dry_run)
		catalog::AddReject(name_, reject);
	else
		catalog::CountReject(name_, source); // a dry run's counters tell what it would reject
	ereport(DEBUG1, (errmsg("mongo_river: river \"%s\": rejected %s of %s in \"%s\": %s", name_.c_str(), operation,
							reject.document_id.c_str(), source.c_str(), error.c_str())));
}

void RiverWorker::RejectUnreadable(const mongo::ChangeEvent &event) {
	const std::string source = event.db.empty() ? "*" : event.db + (event.coll.empty() ? "" : "." + event.coll);
	if (river_.options.on_error == "stop")
		throw StopRiver("22000", "an unreadable change event in \"" + source + "\": " + event.unreadable);
	catalog::Reject reject;
	reject.source = source;
	reject.operation = event.op == mongo::OperationType::kOther ? "unreadable" : mongo::OperationTypeName(event.op);
	reject.raw = RawBytes(event.raw.get());
	if (event.document_key) // (read from the event when it could be)
		reject.document_id = convert::DocumentIdText(event.document_key.get());
	reject.has_id = HasId(event.document_key.get());
	reject.error = event.unreadable;
	if (!river_.options.dry_run)
		catalog::AddReject(name_, reject);
	else
		catalog::CountReject(name_, source);
	ereport(LOG, (errmsg("mongo_river: river \"%s\": rejected an unreadable change event in \"%s\": %s", name_.c_str(),
						 source.c_str(), event.unreadable.c_str())));
}

void RiverWorker::ApplyDocument(Mapped &mapped, const bson_t &doc, const apply::ChangeInfo &change, bool isolate) {
	const char *operation = change.operation.c_str();
	// The reply check left the batch's documents to us (Frames::kCursorBatch): one that
	// is not valid BSON is rejected, with the raw bytes, rather than read in part.
	std::string why;
	size_t used = 0;
	if (!mongo::CheckDocument(bson_get_data(&doc), doc.len, &used, &why)) {
		RejectOrStop(mapped, operation, &doc, nullptr, "the document is not valid BSON: " + why);
		return;
	}
	if (!bson_has_field(&doc, "_id")) {
		RejectOrStop(mapped, operation, &doc, nullptr, "the document has no _id, so it has no key");
		return;
	}
	// An initial copy's batch converts into storage it keeps (CopyBatch); anything else into its own.
	const bool to_copy = copy_.on && !isolate && !river_.options.dry_run;
	convert::ConvertedDocument own;
	convert::ConvertedDocument &converted = to_copy ? *copy_.Slot() : own;
	mapped.writer->ConvertInto(doc, &converted);
	if (!converted.errors.empty()) {
		std::string message;
		for (const convert::ConversionError &error : converted.errors)
			message += (message.empty() ? "" : "; ") + error.Message();
		if (to_copy)
			copy_.Drop();
		KeepRejectedRow(mapped, converted.key);
		RejectOrStop(mapped, operation, &doc, nullptr, message);
		return;
	}
	if (river_.options.dry_run) {
		Copied(change, doc);
		return;
	}
	if (to_copy) {
		// counted only if the batch falls back (see CopyDocuments)
		copy_.docs.emplace_back(reinterpret_cast<const char *>(bson_get_data(&doc)), doc.len);
		return;
	}
	if (Batched(mapped, isolate)) {
		std::string key = convert::ValueText(converted.key);
		auto &writes = pending_[mapped.writer->Row().source];
		// A copy reads in _id order, so its keys mostly come in order: then the write goes at the end
		// without a search.
		if (writes.empty() || writes.rbegin()->first < key)
			writes.emplace_hint(writes.end(), std::move(key), PendingWrite{false, std::move(converted), {}});
		else
			writes[key] = PendingWrite{false, std::move(converted), {}};
		Copied(change, doc);
		return;
	}
	auto write = [&] {
		mapped.writer->Upsert(converted, change);
		if (mapped.phase == "resync")
			mapped.writer->RecordSeen(name_, converted.key);
	};
	if (!isolate) {
		write();
		Copied(change, doc);
		return;
	}
	std::optional<pg::PgError> error = pg::TrySubtransaction(write);
	if (error && Interrupted(*error))
		throw std::move(*error);
	if (error) {
		KeepRejectedRow(mapped, converted.key);
		RejectOrStop(mapped, operation, &doc, nullptr, error->what());
	} else {
		Copied(change, doc);
	}
}

void RiverWorker::KeepRejectedRow(Mapped &mapped, const convert::Value &key) {
	// A resync deletes at its end the rows of documents it did not see: one it rejects exists, so its
	// row (the last version written) stays, with the reject saying why it is not newer (review 26).
	if (mapped.phase == "resync" && !key.IsNull() && !river_.options.dry_run)
		mapped.writer->RecordSeen(name_, key);
}

void RiverWorker::Copied(const apply::ChangeInfo &change, const bson_t &doc) {
	if (change.operation == "copy")
		CountCopied(std::string_view(reinterpret_cast<const char *>(bson_get_data(&doc)), doc.len));
}

void RiverWorker::CountCopied(std::string_view doc) {
	bson_iter_t iter;
	if (!bson_iter_init_from_data(&iter, reinterpret_cast<const uint8_t *>(doc.data()), doc.size()) ||
		!bson_iter_find(&iter, "_id"))
		return;
	// The whole element (type, name, value): the same bytes are the same _id.
	const std::string_view id(reinterpret_cast<const char *>(iter.raw) + iter.off, iter.next_off - iter.off);
	if (!copy_.ids.insert(id).second)
		++copy_.repeats;
}

void RiverWorker::HandleDdl(const mongo::ChangeEvent &event) {
	// DDL policy: the affected mappings stop (phase 'stopped', last_error says why); the rest go on.
	std::string what = std::string(mongo::OperationTypeName(event.op)) + " of " + event.db +
					   (event.coll.empty() ? "" : "." + event.coll);
	for (auto it = mapped_.begin(); it != mapped_.end();) {
		const catalog::MappingRow &row = it->second.writer->Row();
		// A rename onto a mapped collection (dropTarget) drops it: its event's ns is the renamed one.
		bool target = event.op == mongo::OperationType::kRename && !event.to_coll.empty() && row.db == event.to_db &&
					  row.coll == event.to_coll;
		bool affected = ((row.db == event.db && (event.coll.empty() || row.coll == event.coll)) || target) &&
						Touches(it->second, event, true); // never a DDL older than the mapping's cut
		if (!affected) {
			++it;
			continue;
		}
		std::string seen = target ? what + " onto " + event.to_db + "." + event.to_coll + ", which replaced it"
						   : event.op == mongo::OperationType::kInvalidate
							   ? "change stream end on " + event.db + "." + event.coll +
									 " (invalidate: the collection was dropped or replaced, e.g. by a rename onto it)"
							   : what;
		std::string message = "the source saw a " + seen + "; this mapping stopped (SELECT mongo_river.resync('" +
							  name_ + "', '" + row.source + "') copies it again and resumes it)";
		catalog::SetMappingPhase(name_, row.source, "stopped", message);
		ereport(LOG, (errmsg("mongo_river: river \"%s\", collection \"%s\": %s", name_.c_str(), row.source.c_str(),
							 message.c_str())));
		it = mapped_.erase(it);
	}
	reopen_ = true;
}

// ChangePosition returns a text unique to a change that sorts in the source's order: the change
// stream's resume token, or for the oplog (whose events have none) the cluster time and the change's
// index among the batch's changes of that cluster time (a transaction's entries share one).
std::string RiverWorker::ChangePosition(const mongo::ChangeEvent &event, BatchEffect *effect) {
	std::string token = TokenData(event.resume_token.get());
	if (!token.empty())
		return token;
	uint64 time = event.cluster_time.AsUint64();
	auto &seq = (*effect)[std::string()].changes; // the unnamed entry counts per cluster time
	if (last_change_time_ != time) {
		last_change_time_ = time;
		seq = 0;
	}
	char suffix[16];
	snprintf(suffix, sizeof(suffix), "-%06lld", (long long)seq++);
	return "oplog:" + Hex(time) + suffix;
}

void RiverWorker::ApplyEvent(const mongo::ChangeEvent &event, bool isolate, BatchEffect *effect) {
	using Op = mongo::OperationType;
	if (!event.unreadable.empty()) {
		RejectUnreadable(event);
		return;
	}
	if (event.op == Op::kDrop || event.op == Op::kRename || event.op == Op::kDropDatabase) {
		HandleDdl(event);
		return;
	}
	if (event.op == Op::kInvalidate) {
		if (!event.coll.empty()) // a collection stream's end: its collection was dropped or replaced
			HandleDdl(event);
		reopen_ = true;
		return;
	}
	apply::ChangeInfo change;
	change.operation = mongo::OperationTypeName(event.op);
	change.cluster_time = event.cluster_time.AsUint64();
	change.wall_ms = event.wall_time_ms;
	change.position = ChangePosition(event, effect);
	Mapped *mapped = Find(event.db, event.coll);
	if (!mapped && std::find(river_.databases.begin(), river_.databases.end(), event.db) != river_.databases.end())
		discover_ = true; // a collection of a mapped database that is not mapped (yet)
	if (mapped && !Touches(*mapped, event, false))
		mapped = nullptr; // older than the mapping's cut (or its catch-up's business)
	ereport(DEBUG2, (errmsg_internal("mongo_river: river \"%s\": %s on %s.%s%s%s", name_.c_str(),
									 mongo::OperationTypeName(event.op), event.db.c_str(), event.coll.c_str(),
									 event.full_document ? " with document" : "", mapped ? "" : " (not mapped)")));
	if (!mapped)
		return;
	catalog::MappingProgress &progress = (*effect)[mapped->writer->Row().source];
	progress.changes++;
	mapped->stream_changes++;
	if (event.wall_time_ms)
		progress.last_wall_ms = event.wall_time_ms;
	switch (event.op) {
	case Op::kInsert:
	case Op::kReplace:
	case Op::kUpdate:
		// An update carries the document as it is now (updateLookup); none when it was deleted since,
		// in which case the delete event follows.
		if (event.full_document) {
			ApplyDocument(*mapped, *event.full_document, change, isolate);
		} else if (event.op == Op::kUpdate) {
			bson_iter_t iter;
			if (!event.document_key || !bson_iter_init_find(&iter, event.document_key.get(), "_id"))
				break;
			if (!reader_lookups_ && !lookup_fallback_) {
				ApplyUpdate(*mapped, event, bson_iter_value(&iter), change, isolate);
				break;
			}
			if (lookup_fallback_) {
				mongo::Bson current = source_->FindById(event.db, event.coll, bson_iter_value(&iter));
				if (current) {
					ApplyDocument(*mapped, *current, change, isolate);
					break;
				}
			}
			// History keeps every version: an update whose document is gone by now still gets its
			// version, without the document (upsert mode has nothing to write: the delete follows).
			if (mapped->writer->History() && !river_.options.dry_run) {
				try {
					mapped->writer->AppendBareVersion(mapped->writer->KeyFromId(bson_iter_value(&iter)), change);
				} catch (const convert::ConversionError &e) {
					RejectOrStop(*mapped, "update", nullptr, event.document_key.get(), e.Message());
				}
			}
		}
		break;
	case Op::kDelete: {
		bson_iter_t iter;
		if (!event.document_key || !bson_iter_init_find(&iter, event.document_key.get(), "_id"))
			break;
		convert::Value key;
		try {
			key = mapped->writer->KeyFromId(bson_iter_value(&iter));
		} catch (const convert::ConversionError &e) {
			RejectOrStop(*mapped, "delete", nullptr, event.document_key.get(), e.Message());
			break;
		}
		if (river_.options.dry_run)
			break;
		if (Batched(*mapped, isolate))
			pending_[mapped->writer->Row().source][convert::ValueText(key)] = PendingWrite{true, {}, key};
		else
			mapped->writer->Delete(key, change);
		break;
	}
	default:
		break;
	}
}

bool RiverWorker::TryApplyBatch(const mongo::Batch &batch, bool isolate) {
	try {
		BatchEffect txn_effect;
		pg::Transaction txn;
		{
			pg::SpiConnection spi;
			catalog::LockRiver(name_); // serialised with repairs (verify, retry_rejects)
			BatchEffect effect;
			pending_.clear();
			txn_rejects_.clear();
			diff_updates_ = lookups_ = 0;
			for (const mongo::ChangeEvent &event : batch.events)
				ApplyEvent(event, isolate, &effect);
			FlushPending();
			for (auto &[source, progress] : effect) {
				if (source.empty())
					continue;
				progress.changes -= txn_rejects_[source]; // a rejected change is not applied
				catalog::AddMappingProgress(name_, source, progress);
			}
			if (catch_up_) {
				RequireRiver();
				if (!river_.options.dry_run)
					catalog::SaveCatchUp(name_, catch_up_->source,
										 std::min(uint64(batch.reached.AsUint64()), catch_up_->limit),
										 CatchUpDone(batch, catch_up_->limit));
			} else if (river_.options.dry_run) {
				RequireRiver();
			} else if (!catalog::SavePosition(name_, id_, batch.position.ToJson(), batch.reached.AsUint64(),
											  batch.caught_up)) {
				throw RiverGone(sqlstate::kUndefinedObject, "river \"" + name_ + "\" was dropped");
			}
			txn_effect = std::move(effect);
		}
		txn.Commit();
		ReportBatch(txn_effect);
		if (diff_updates_ > 0 || lookups_ > 0)
			ereport(DEBUG1, (errmsg_internal("mongo_river: river \"%s\": applied %lld update(s) from their "
											 "update descriptions, looked up %lld document(s)",
											 name_.c_str(), (long long)diff_updates_, (long long)lookups_)));
		return true;
	} catch (const pg::PgError &error) {
		if (isolate)
			throw;
		ereport(DEBUG1, (errmsg("mongo_river: river \"%s\": batch failed (%s); applying it change by change",
								name_.c_str(), error.what())));
		return false;
	}
}

// ReportBatch publishes a committed batch's effect in shared memory (mongo_river.status).
void RiverWorker::ReportBatch(const BatchEffect &effect) {
	for (const auto &[source, progress] : effect) {
		if (source.empty())
			continue;
		worker::LiveUpdate live;
		live.changes_applied = totals_[source].second += progress.changes;
		live.last_source_ms = progress.last_wall_ms;
		worker::ReportLive(name_, source, live);
	}
}

// ReportPending publishes what lag is measured from (mongo_river.status): before a batch is applied
// its first change is the oldest one seen and not applied; once applied, the river is caught up when
// the source had nothing more, and otherwise the next change is no older than the batch's last.
void RiverWorker::ReportPending(const mongo::Batch &batch, bool applied) {
	auto wall_ms = [](const mongo::ChangeEvent &event) {
		return event.wall_time_ms ? *event.wall_time_ms : int64(event.cluster_time.t) * 1000;
	};
	worker::LiveUpdate river;
	if (!applied) {
		if (batch.events.empty())
			return;
		river.caught_up = false;
		river.oldest_pending_ms = wall_ms(batch.events.front());
		river.newest_seen_ms = wall_ms(batch.events.back());
	} else {
		river.caught_up = batch.caught_up;
		if (batch.caught_up)
			river.oldest_pending_ms = 0;
		else if (!batch.events.empty())
			river.oldest_pending_ms = wall_ms(batch.events.back());
	}
	worker::ReportLive(name_, "", river);
}

// Batched tells whether a mapping's writes in this pass are collected for multi-row statements:
// in upsert mode, outside the change-by-change retry (isolate), and not in a dry run.
bool RiverWorker::Batched(const Mapped &mapped, bool isolate) const {
	return !isolate && !mapped.writer->History() && !river_.options.dry_run;
}

// FlushPending writes the batch's reduced changes: per mapping, the deleted keys with one
// statement, then the upserted documents with multi-row statements. fresh says the documents most
// likely have no rows yet (an initial copy): they are first tried with COPY FROM, in a
// subtransaction; a row that exists already (the stream wrote it during the copy) or any other
// refusal rolls the COPY back and the statements write the batch instead.
void RiverWorker::FlushPending(bool fresh) {
	for (auto &[source, writes] : pending_) {
		auto mapped = mapped_.find(source);
		if (mapped == mapped_.end())
			continue;
		std::vector<convert::Value> deletes;
		std::vector<const convert::ConvertedDocument *> upserts;
		std::vector<convert::Value> seen; // only a resync records the keys it saw
		const bool resync = mapped->second.phase == "resync";
		upserts.reserve(writes.size());
		FlushLookups(mapped->second, writes, &deletes);
		for (auto &[key, write] : writes) {
			if (write.is_patch || write.is_lookup)
				continue;
			if (write.is_delete) {
				deletes.push_back(write.key);
			} else {
				upserts.push_back(&write.document);
				if (resync)
					seen.push_back(write.document.key);
			}
		}
		apply::MappingWriter &writer = *mapped->second.writer;
		writer.DeleteBatch(deletes);
		if (!(fresh && deletes.empty() && TryCopyRows(mapped->second, upserts)))
			writer.UpsertBatch(upserts);
		if (resync)
			writer.RecordSeenBatch(name_, seen);
	}
	pending_.clear();
}

bool RiverWorker::TryCopyRows(Mapped &mapped, const std::vector<const convert::ConvertedDocument *> &upserts) {
	apply::MappingWriter &writer = *mapped.writer;
	if (upserts.empty() || !writer.CanCopy())
		return false;
	std::optional<pg::PgError> error = pg::TrySubtransaction([&] { writer.CopyRows(upserts); });
	if (!error)
		return true;
	ereport(DEBUG1, (errmsg("mongo_river: river \"%s\", collection \"%s\": COPY of the batch failed (%s); "
							"writing it with INSERT ... ON CONFLICT",
							name_.c_str(), writer.Row().source.c_str(), error->what())));
	return false;
}

void RiverWorker::UpsertLastOfEachKey(Mapped &mapped, const std::vector<const convert::ConvertedDocument *> &rows) {
	// Keyed by the key's text, as pending_ is: two _ids of one text (a string equal to an ObjectId's
	// hex under a text key) are one row, the later document's, as with a batch of changes.
	std::map<std::string, const convert::ConvertedDocument *> last;
	for (const convert::ConvertedDocument *row : rows)
		last[convert::ValueText(row->key)] = row;
	std::vector<const convert::ConvertedDocument *> upserts;
	upserts.reserve(last.size());
	for (const auto &[key, row] : last)
		upserts.push_back(row);
	mapped.writer->UpsertBatch(upserts);
}

void RiverWorker::ApplyBatch(const mongo::Batch &batch) {
	// Optimistic: the whole batch in one transaction. If PostgreSQL refuses a row (a constraint, a
	// type's input function), the batch is applied again change by change in subtransactions, so
	// that only the offending changes go to rejects.
	ReportPending(batch, false);
	if (!TryApplyBatch(batch, false))
		TryApplyBatch(batch, true);
	ReportPending(batch, true);
	// The batch's table statistics (rows inserted, updated, deleted) go to the cumulative statistics
	// at most once a second, as a backend's do when it goes idle: without them autovacuum would never
	// vacuum or analyze what a running river writes, and the planner would keep the sizes of its copy.
	pg::Call([] {
		if (!IsTransactionOrTransactionBlock())
			(void)pgstat_report_stat(false);
	});
	applied_ += int64(batch.events.size());
	if (catch_up_) {
		// A catch-up moves its mapping's cut, never the river's position.
		auto it = mapped_.find(catch_up_->source);
		bool done = CatchUpDone(batch, catch_up_->limit) || it == mapped_.end();
		if (it != mapped_.end()) {
			it->second.cut = std::min(uint64(batch.reached.AsUint64()), catch_up_->limit);
			it->second.catch_up = !done;
		}
		if (done)
			catch_up_.reset();
		return;
	}
	position_ = batch.position; // committed with the batch: a reconnect resumes from here (Connect)
	reached_ = std::max(reached_, uint64(batch.reached.AsUint64()));
}

} // namespace mongo_river::worker::internal
