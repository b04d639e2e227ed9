"""Durability: the write-ahead journal and the files a run is read back from after a crash.

``frames`` is the checksummed record format, ``journal`` the append-only log with group
commit, ``storage`` the output folder (safe names, atomic writes, fsync), ``runstate`` the
status marker and the settings a run is recovered with, ``resume`` reads a dead run back,
``peek`` summarises a journal without replaying it. These modules import only the vocabulary;
what drives a tracker from a journal (recover, merge) lives in ``run/``.
"""
