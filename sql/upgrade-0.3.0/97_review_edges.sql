-- 97: review edges. resync() restarts the copy's counters at once (docs_copied, the copy's start and
-- estimated total), so that status and copy_progress never show the previous copy's numbers for the
-- new one. The body is rewritten in place: pg_get_functiondef keeps SECURITY DEFINER and search_path.
DO $resync$
DECLARE
    def text := pg_catalog.pg_get_functiondef('mongo_river.resync(name, text)'::regprocedure);
    fixed text;
BEGIN
    fixed := pg_catalog.replace(def, 'copy_last_id = NULL, last_error = NULL,',
                                'copy_last_id = NULL, last_error = NULL, docs_copied = 0, copy_total = NULL, copy_started_at = NULL,');
    IF fixed = def THEN
        RAISE EXCEPTION 'mongo_river upgrade: resync() has not the expected body';
    END IF;
    EXECUTE fixed;
END
$resync$;
