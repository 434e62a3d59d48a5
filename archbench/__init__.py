"""archbench: measure neural-network architectures and settle claims about them with numbers."""

__version__ = "0.1.0"
