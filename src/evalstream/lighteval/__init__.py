"""lighteval's API shapes: the sync facade its ``Pipeline`` drives, and its call shapes.

``sync`` is ``SyncEvaluationTracker`` (lighteval's attribute API over the async tracker, on a
loop in a background thread); ``adapters`` reads lighteval's details-logger calls, tasks and
corpus-metric inputs. lighteval itself is never imported.
"""
