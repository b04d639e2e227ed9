"""The live view (``evalstream view``, ``evalstream.view_app``): a local web app over the runs of
an output folder and a ``Runtime``'s live runs; progress and estimates as server-sent events, a
sample browser that pages through saved details, charts drawn by the uPlot file shipped here."""
