"""Ticket Triage: classify helpdesk tickets into a queue and a priority, with calibrated confidence.

Importing the package sizes the thread pools to the CPUs this process may use and makes idle OpenMP
threads sleep (see ``runtime.configure_threads``): both only work when set before numpy, torch, XGBoost
or LightGBM load, and every entry point (CLI, server, tests) imports this package first.
"""

from ticket_triage.runtime import configure_threads as _configure_threads

__version__ = "0.2.0"

_configure_threads()
