-- 0.3.0: host safety, secrets, edges and monitoring. Each fragment of this folder is one topic;
-- make concatenates them in name order into sql/install/mongo_river--0.2.0--0.3.0.sql.
SELECT 1 WHERE false;
