"""Capture side of trainio: run a training command and record its I/O and DataLoader events."""

__version__ = "0.1.0"
