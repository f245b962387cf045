"""The study browser: what the local archive holds."""
