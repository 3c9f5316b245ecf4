// live_main.cpp: main of the live source tests: libmongoc is initialised once around the run.
#include <gtest/gtest.h>

#include <mongoc/mongoc.h>

int main(int argc, char **argv) {
	mongoc_init();
	testing::InitGoogleTest(&argc, argv);
	int rc = RUN_ALL_TESTS();
	mongoc_cleanup();
	return rc;
}
