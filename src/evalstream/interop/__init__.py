"""Runs moved between evalstream and the field's other formats: ``evalstream export`` and
``evalstream import``.

Each format is one module with the peer's own library as an optional extra (inspect_ai's
types and writer, every_eval_ever's validators): nothing here imports a peer until its format
is asked for. Export reads a saved run (``runs/``); import records the foreign run through an
``EvaluationTracker`` (``run/``), so an imported run is a real evalstream run — journal,
results, details — that ``ls``, ``show``, ``compare``, ``report`` and ``query`` read like any
other.

The formats are registered in ``interop/formats.py``.
"""
