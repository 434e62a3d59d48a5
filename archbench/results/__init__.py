"""Records (one figure each) and run documents (records plus the environment they were measured in)."""

from archbench.results.record import SCHEMA_VERSION, Record, RunDocument, RunWriter, load_run

__all__ = ["SCHEMA_VERSION", "Record", "RunDocument", "RunWriter", "load_run"]
