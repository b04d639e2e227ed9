"""The ``evalstream`` command: the parser in ``main``, and its subcommands.

``output`` writes tables as rich tables on a terminal, plain text otherwise, or JSON, and shows
progress bars only on a terminal; ``views`` holds ``ls``, ``show`` and ``compare``; ``actions``
holds ``demo``, ``recover``, ``push`` and ``report``; ``merge`` the ``merge`` subcommand;
``demo`` the demo run. It may import anything but ``testing``.
"""
