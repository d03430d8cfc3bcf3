"""The HTTP service.

Idle OpenMP threads must sleep instead of spinning: XGBoost, LightGBM and PyTorch each keep a pool, and
on two cores a spinning pool steals the CPU from the next library's work (measured: one ticket took
125 ms with spinning pools and 45 ms without). The package's ``__init__`` sets that up before any of them
loads (``ticket_triage.runtime.configure_threads``).
"""
