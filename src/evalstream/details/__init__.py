"""The details pipeline: the worker processes that turn logged samples into details files.

``protocol`` is what crosses the process boundary (typed msgspec Structs); ``pool`` the parent's
handles on the workers (shared by every run of a ``Runtime``); ``worker`` the child's loop and
one run's state in it; ``task_state``, ``rows``, ``live_parquet``, ``parquet`` and
``lighteval_layout`` what a worker builds and writes (segments, columns, parquet in either
layout). The worker process imports ``details.worker`` and must start cheaply: this file imports
nothing, and the package imports only the vocabulary, ``stats`` and ``durability``.
"""
