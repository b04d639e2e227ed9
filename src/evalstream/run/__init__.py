"""The run: the tracker and everything that carries a sample from the caller to ``save()``.

``tracker`` is ``EvaluationTracker`` (every public call), wired from ``parts``: ``config`` (what
the run declared, and its checks), ``coerce``/``intake``/``checks`` (a sample validated and
encoded once, in the caller), ``batcher`` (the pending batch), ``host`` (working folder, status
marker, journal, the actors' task group), ``coordinator`` (routing), ``runtime`` (the shared
details workers), ``progress``, ``save`` and ``hub_calls``. ``control`` is the named interface
that ``recover`` and ``merge`` (which drive a fresh tracker) and the sync facade use.
"""
