"""The run: one scenario played under one schedule against one driver.

``runner.py`` plays the story and the schedule (the steps in ``steps.py``, the observations in
``observing.py``), ``gateway.py`` is the control plane that consumes the driver's reports,
``oracle.py`` says what the contract demands after each observation, ``checks.py`` compares the
two. No pytest here: the plugin is a thin face over
:func:`~pytest_sandbox_conformance.run.runner.play`.
"""
