"""The sinks: where a finished run goes — local files, parquet, TensorBoard and the Hub.

``outputs`` wraps each sink as one awaitable returning an ``OutputOutcome`` (never raising for
its own failure); ``local``, ``results``, ``rows`` and ``parquet`` are lighteval's on-disk formats;
``tensorboard`` the event files; ``hub``, ``hub_targets``, ``card``, ``retry`` and ``push`` the
dataset repo publishing. Sinks import the vocabulary, ``stats`` and ``durability``, never the
actors or the tracker.
"""
