"""The bundled scenario catalog (installed as ``pytest_sandbox_conformance.catalog``).

Each ``*.yaml`` file here holds one or more scenarios; ``docs/scenarios.md`` documents the
language and ``docs/contract.md`` maps every requirement to the scenarios that check it.
"""
