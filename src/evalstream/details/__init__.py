"""The details pipeline: the worker processes that turn samples into details files."""
