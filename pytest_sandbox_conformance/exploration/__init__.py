"""Exploration: which schedules (and stories) of a scenario are played.

``schedule.py`` holds the schedule type, its printable id and the pinned, exhaustive and random
enumerations. Pure: no I/O, no pytest.
"""
