"""Projection: what a captured run would take on other storage, node counts and record formats.

``scenario.project_trace`` is the door (the Python API behind ``replay what-if``): it resolves a
trace and a user's overrides into the models, ``whatif.project`` runs the SimPy model
(``trainio.models.simulate``) and names the bottleneck; ``render`` and ``backends_table`` turn
results and profiles into what the CLI prints. ``sweep`` runs grids of scenarios (``grid``,
``engines``: a local pool or Ray) into a sweep file (``sweepfile``); ``report`` answers the
capacity questions from one, drawn by ``plots`` into ``pages`` (HTML, Markdown).
"""
