"""write_changes: makes live changes to demo.posts for N seconds (inserts, updates, new comments,
deletes), or with `count` prints the collection's size for comparison with PostgreSQL."""

import random
import sys
import time

import pymongo


def main(uri, seconds):
    posts = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000).demo.posts
    if seconds == "count":
        print(f"demo: MongoDB demo.posts has {posts.count_documents({})} documents")
        return
    rng = random.Random()
    deadline = time.monotonic() + float(seconds)
    n = 0
    while time.monotonic() < deadline:
        i = rng.randrange(1000)
        op = rng.random()
        if op < 0.4:
            posts.update_one({"_id": f"p{i}"}, {"$set": {"title": f"edited at {time.time():.3f}"},
                                                "$inc": {"author.karma": 1}})
        elif op < 0.7:
            posts.update_one({"_id": f"p{i}"}, {"$push": {"comments": {"user": "live", "comment": "a live comment"}}})
        elif op < 0.9:
            posts.insert_one({"_id": f"live{n}", "title": "a live post", "author": {"name": "demo", "karma": 0},
                              "tags": ["live"], "comments": []})
        else:
            posts.delete_one({"_id": f"p{i}"})
        n += 1
        time.sleep(0.01)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
