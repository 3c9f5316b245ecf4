"""load_sample: fills database `demo` of a MongoDB with a small blog dataset (posts with nested
authors and arrays of comment sub-documents), the shape mongo_river's mappings are made for."""

import datetime
import random
import sys

import pymongo


def main(uri, count=1000):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    db = client.demo
    db.posts.drop()
    rng = random.Random(42)
    start = datetime.datetime(2024, 1, 1)
    posts = []
    for i in range(count):
        posts.append({
            "_id": f"p{i}",
            "title": f"Post number {i}",
            "author": {"name": rng.choice(["Ada", "Grace", "Linus", "Barbara"]), "karma": rng.randint(0, 999)},
            "published": start + datetime.timedelta(hours=i),
            "tags": rng.sample(["mongo", "postgres", "sync", "cdc", "sql"], 2),
            "comments": [{"user": f"u{rng.randint(1, 50)}", "comment": f"comment {j} on {i}"}
                         for j in range(rng.randint(0, 3))],
        })
    db.posts.insert_many(posts)
    print(f"load_sample: {db.posts.count_documents({})} documents in demo.posts")


if __name__ == "__main__":
    main(sys.argv[1])
