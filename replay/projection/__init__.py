"""Projection: what-if of one configuration, sweeps over grids of them, and their reports."""
