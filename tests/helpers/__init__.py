"""What the tests share besides fixtures, one module per concept: ports and processes (and waiting for
a condition), the ``mlops`` CLI in process, pipeline configs, drift checks, the browser, Prefect flow
runs, and Bento packaging. Fixtures stay in ``tests/conftest.py``, which imports from here."""
