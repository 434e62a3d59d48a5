"""Rendering of run documents: terminal tables, JSON/CSV/Markdown exports, plots and comparisons."""
