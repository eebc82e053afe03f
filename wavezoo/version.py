"""The version of wavezoo (``wavezoo.__version__``), in its own module so that any module can record it."""

__version__ = "0.1.0"
