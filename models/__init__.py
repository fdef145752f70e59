"""The SimPy model of a training job's data loading, and its inputs (trainio.models).

Inputs: a ``workload`` (from a trace), a ``backend`` profile, a ``cluster``, a record ``formats``
entry, joined by ``plan.make_plan``. ``simulate.simulate`` is the door: it runs the ``pipeline``
in ``exact`` or ``fast`` mode over the SimPy resources (``storage``, ``fluid``) and returns
``counters``. docs/model.md states the model's assumptions and equations.
"""
