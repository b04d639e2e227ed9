"""The sinks: where a finished run goes — local files, TensorBoard and the Hub.

``outputs`` is the ``Output`` protocol and the registry that ``save()``, recovery, merge and
``evalstream push`` go through; ``local``, ``tensorboard_output`` and ``hub_output`` are the three
outputs, each one module; ``results`` is lighteval's results JSON, ``tensorboard`` the event
files, ``hub``, ``card``, ``retry``, ``redact`` and ``push`` the dataset-repo publishing. Sinks
import the vocabulary, ``stats``, ``durability`` and ``details``, never the actors or the run.
"""
