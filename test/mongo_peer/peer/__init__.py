"""mongo_peer: a MongoDB 6.0 single-node replica set look-alike for tests."""
