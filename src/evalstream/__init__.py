"""evalstream."""
