"""Reports of a session (``docs/reports.md``), pure functions of the report's data: the verdict
(``verdict.py``), the JSON report (``json_report.py``), the HTML report (``html_report.py``,
``html_lanes.py``), the Gateway-API-shaped claim (``claim.py``), the terminal's table
(``terminal.py``) and the contract's text (``contract.py``, generated ``contract_text.py``)."""
