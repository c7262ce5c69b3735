"""The scheduled worker's parts: the timetable, a run's body, job standing and backoff, and its
HTTP side (``http``: the server; ``console``: the probes' app, the API and the web console).

``jobs.serve`` puts them together; each part is usable (and tested) without the others.
"""
