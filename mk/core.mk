# core.mk: targets built from the PG-free core (offline tools, fuzz targets); included by Makefile.
