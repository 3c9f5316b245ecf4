-- boundary: C++ exceptions and PostgreSQL errors cross the C++/PostgreSQL boundary with their
-- SQLSTATE, and the C++ frames in between are unwound (their destructors run).
CREATE FUNCTION pg_temp.probe(mode text) RETURNS bigint
    AS 'mongo_river', 'mongo_river_test_boundary' LANGUAGE C STRICT;
CREATE FUNCTION pg_temp.destructor_runs() RETURNS bigint
    AS 'mongo_river', 'mongo_river_test_destructor_runs' LANGUAGE C STRICT;

-- outcome calls probe(mode) and reports SQLSTATE, message, detail and hint, and how many C++
-- destructors ran during the call.
CREATE FUNCTION pg_temp.outcome(mode text, OUT code text, OUT message text, OUT detail text, OUT hint text,
                                OUT destructors bigint)
LANGUAGE plpgsql AS $$
DECLARE
    before bigint := pg_temp.destructor_runs();
BEGIN
    BEGIN
        PERFORM pg_temp.probe(mode);
        code := '00000';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    END;
    destructors := pg_temp.destructor_runs() - before;
END
$$;

SELECT * FROM pg_temp.outcome('none');
SELECT * FROM pg_temp.outcome('pg_error');
SELECT * FROM pg_temp.outcome('error');
SELECT * FROM pg_temp.outcome('bad_alloc');
SELECT * FROM pg_temp.outcome('std_exception');
SELECT * FROM pg_temp.outcome('unknown');
SELECT pg_temp.probe('pg_ok') AS forty_two;

-- The session goes on after each error, also at top level and inside a transaction.
SELECT pg_temp.probe('pg_error');
SELECT pg_temp.probe('error');
BEGIN;
SAVEPOINT s;
SELECT pg_temp.probe('std_exception');
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.probe('none') AS still_in_transaction;
COMMIT;
SELECT 1 AS session_alive;
