"""The job monitor: sends, forwards and retrieves the core runs."""
