"""Sharded runs: many processes or hosts each record a shard of one run, a merge makes the run.

A room of its own because it spans processes and hosts: the object-store folder every shard
streams its journal to (``objects``, ``manifest``), the writer a sharded tracker runs, and the
plan and the union a merge reads. It imports the vocabulary and ``durability``; the merge
itself drives a tracker, so it lives in ``run/merge.py``.
"""
