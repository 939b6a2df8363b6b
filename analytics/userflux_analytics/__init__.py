"""Userflux analytics: HTML/PNG reports and contract checks for run directories.

The package only reads the run contract (``config.json``, ``status.json``, ``summary.json``,
``timeseries.ndjson``, ``samples.ndjson``) and never imports Qt.

* ``python3 -m userflux_analytics report RUN_DIR [--out DIR]`` writes ``report.html`` and PNG charts.
* ``python3 -m userflux_analytics check RUN_DIR [--schemas DIR]`` validates the artifacts.
* :func:`userflux_analytics.contract.check_run` is the checker as a function.
"""

__version__ = "0.1.0"
