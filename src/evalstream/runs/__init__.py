"""Reading saved runs back for people: the runs of an output folder, one run, two compared.

A room of its own because it reads what the sinks and the journal wrote, after the fact, and
nothing in the recording path needs it. It may import the vocabulary, ``stats/``,
``durability/`` and ``sinks/`` (like ``actors/``), never the tracker; the command line
(``cli/``) and the HTML report build on it.
"""
