-- river.sql: the demo's river: demo.posts into posts (+ post_comments), with :uri as the source.
SELECT mongo_river.create_river('demo', :'uri', '{"batch_size": 500}');
SELECT mongo_river.map_collection('demo', 'demo.posts', 'posts', '{
  "pk": "id",
  "columns": {
    "id":          {"path": "_id",          "type": "text"},
    "title":       {"path": "title",        "type": "text"},
    "author_name": {"path": "author.name",  "type": "text"},
    "karma":       {"path": "author.karma", "type": "integer"},
    "published":   {"path": "published",    "type": "timestamptz"},
    "tags":        {"path": "tags",         "type": "text[]"}
  },
  "arrays": {
    "comments": {"path": "comments", "table": "post_comments", "fk": "post_id", "position": "pos",
                 "columns": {"user": {"path": "user",    "type": "text"},
                             "body": {"path": "comment", "type": "text"}}}
  },
  "document": "doc"
}');
SELECT mongo_river.wait_for_sync('demo', '60 s') AS copied;
