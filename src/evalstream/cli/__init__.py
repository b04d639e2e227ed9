"""The ``evalstream`` command's subcommands, behind the parser in ``evalstream.cli.main``.

Top level (it may import anything): ``output.py`` writes tables as rich tables on a terminal,
plain text otherwise, or JSON, and shows progress bars only on a terminal; ``views.py`` holds
``ls``, ``show`` and ``compare``; ``actions.py`` holds ``demo``, ``recover``, ``push`` and
``report``.
"""
