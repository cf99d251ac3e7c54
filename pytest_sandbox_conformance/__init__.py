"""pytest-sandbox-conformance: a conformance suite for sandbox drivers.

Importing this package imports neither pytest nor docker: the pytest plugin lives in
:mod:`pytest_sandbox_conformance.plugin`, the engine interface in
:mod:`pytest_sandbox_conformance.engines.base` and the driver-facing report types in
:mod:`pytest_sandbox_conformance.api`.
"""

__version__ = "0.1.0"
