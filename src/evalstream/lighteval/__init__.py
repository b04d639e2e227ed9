"""lighteval's two API shapes: its objects read by their fields, and the sync facade."""
