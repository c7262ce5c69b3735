"""The scheduled worker's parts: the timetable, a run's body, job standing and backoff, HTTP status.

``jobs.serve`` puts them together; each part is usable (and tested) without the others.
"""
