"""Sharded runs: many processes or hosts each record a shard of one run, a merge makes the run.

A room of its own because it spans processes and hosts: the object-store folder every shard
streams its journal to, the writer a sharded tracker runs, and the merge. It imports the
vocabulary, stats and durability; the merge drives a tracker, imported lazily as recovery does.
"""
