"""s2s-bench: a benchmark harness for streaming Telugu speech-to-speech systems."""

__version__ = "0.1.0"
