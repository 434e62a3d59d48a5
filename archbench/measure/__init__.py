"""Measurers: each takes a built model and returns records; none prints."""
