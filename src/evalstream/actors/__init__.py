"""The actors: one anyio task per lighteval logger, each consuming its own bounded inbox.

``base`` is the actor loop; ``general_config``, ``details``, ``metrics``, ``versions`` and
``task_config`` are lighteval's five loggers; ``details_worker`` is the child process the details
actor feeds (hashing, row encoding and parquet off the event loop). Only the coordinator, the run
host and the save orchestration import from here. Actors may import the vocabulary, ``stats``,
``durability`` and ``sinks``. This file imports nothing, so the worker process starts cheaply.
"""
