"""Statistics: pure functions of the collected values (no I/O, no event loop).

``aggregations`` is the registry of corpus and sample aggregations, ``bootstrap`` the vectorised
seeded bootstrap, ``compute`` the per-metric store, aggregation with a standard error and the
derived (suite) rows, ``hashing`` lighteval's per-sample and per-task hashes. Imports only the
vocabulary; anything may import from here.
"""
