"""Durability: the write-ahead journal and everything that reads a run back after a crash.

``frames`` is the checksummed record format, ``journal`` the append-only log with group
commit, ``storage`` the output folder (safe names, atomic writes, fsync), ``runstate`` the
status marker, ``resume`` and ``recovery`` the ways a dead run is read back. These modules import
only the vocabulary; ``recovery`` alone drives an ``EvaluationTracker``, imported when it runs.
"""
