"""Probes: what a frozen encoder knows about 3D, measured against honest baselines (``psfm probe``).

Data flows scenes -> fixed probe views (``scenes``) -> frozen features per source (``sources``)
-> probes fit on train scenes, scored on held-out scenes (``facts``, ``depth``, ``pose``,
``retrieval``) -> a report with figures (``report``). ``run.run_probes`` ties them together.
"""
