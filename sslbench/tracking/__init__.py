"""Optional experiment tracking of a run (TensorBoard, Weights & Biases): ``sslbench run --track ...``.

Off by default and never required: without ``--track`` the engine and the runner talk to a
:class:`NullTracker` and no tracker package is imported. See :mod:`.base` for what is logged when.
"""

from .base import MultiTracker, NullTracker, Tracker
from .factory import TRACKERS, TrackingOptions, check_tracking, make_tracker, parse_track, tracking_options
from .meter import StepMeter, final_metrics

__all__ = ["Tracker", "NullTracker", "MultiTracker", "StepMeter", "TrackingOptions", "TRACKERS", "parse_track",
           "check_tracking", "make_tracker", "tracking_options", "final_metrics"]

