-- 45_rejects_once: a copy's reject of a document replaces the reject an earlier copy (a resync's, or
-- the copy before it) recorded for it; verify looks a document's rejects up too. Both by this index.
CREATE INDEX rejects_document ON mongo_river.rejects (river, source, document_id);
