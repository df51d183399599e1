"""bench: an optimizer benchmarking harness."""

__version__ = "0.1.0"


class BenchError(Exception):
    """Bad input the user can fix. The CLI prints it as one line and exits with code 2."""
