"""The run: the tracker and everything that carries a sample from the caller to save()."""
