"""Vajra: a low-latency execution engine on free-threaded CPython 3.13t."""
