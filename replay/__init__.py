"""Projection of a captured workload onto other storage, cluster sizes and record formats."""
