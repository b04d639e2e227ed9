"""Statistics: pure functions of the collected values (no I/O, no event loop).

``aggregations`` is the registry of corpus and sample aggregations, ``bootstrap`` the vectorised
seeded bootstrap, ``compute`` the per-metric store, aggregation with a standard error and the
derived (suite) rows, ``hashing`` lighteval's per-sample and per-task hashes, ``paired`` the
paired comparison of two runs, ``rows`` the results row (metric, value, stderr, 95 % interval)
that every reader of a ``results`` section uses. Imports only the vocabulary; anything may
import from here.
"""
