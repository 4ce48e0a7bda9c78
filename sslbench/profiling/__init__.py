"""``sslbench profile``: the negatives sweep (``sweep.py``), one measured point in a fresh process
(``point.py``), and its records, table and plot (``report.py``)."""
