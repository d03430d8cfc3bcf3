"""The HTTP service. Importing it first makes OpenMP threads sleep when idle instead of spinning.

XGBoost, LightGBM and PyTorch each keep an OpenMP pool; by default a finished pool spins for a while,
and on two cores that spinning steals the CPU from the next library's work (measured: one ticket took
125 ms with spinning pools and 45 ms without). It must be set before any of them loads.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
