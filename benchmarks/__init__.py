"""pipetrace benchmarks: what capture costs, side by side (``python -m benchmarks.run``)."""
