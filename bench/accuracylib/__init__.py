"""The pieces of bench/accuracy.py: conditions, the machine's CPU, real runs, profiles, projections, the report."""
