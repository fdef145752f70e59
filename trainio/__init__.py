"""trainio: capture the real I/O of a training run once, project its time-to-train elsewhere.

Everything imports under this one name, so that a user's own ``models/`` or ``tracer.py`` never
collides with ours. The rooms keep the folders the project was asked for, linked in here:

    trainio.tracer     capture (tracer/): the injected recorder, hooks, ``tracer`` CLI
    trainio.tracefile  the trace directory (tracefile/): format, the one reader, summary
    trainio.models     the SimPy model and its inputs (models/): storage, cluster, workload
    trainio.replay     projection, replay on real storage, calibration (replay/): ``replay`` CLI
"""

__version__ = "0.2.0"
