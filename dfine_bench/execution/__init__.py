"""Running a suite: the plan (units and their records), the run folder, the executor.

``runner.py`` wires them together; each module here has one job.
"""
