"""The actors: one anyio task per lighteval logger, each consuming its own bounded inbox.

``base`` is the actor loop; ``general_config``, ``details``, ``metrics``, ``versions`` and
``task_config`` are lighteval's five loggers; the details actor feeds the worker processes of
``details/`` through their typed protocol. Only the run (coordinator, host, save) imports from
here. Actors may import the vocabulary, ``stats``, ``durability`` and ``details``.
"""
