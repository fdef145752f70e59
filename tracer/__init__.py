"""Capture side of trainio: run a training command and record its I/O and DataLoader events."""
