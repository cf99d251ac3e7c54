"""Reports of a session: ``conformance.py`` builds the JSON conformance report and the verdict."""
