"""pipetrace benchmarks: what capture costs, measured side by side (``python -m benchmarks.run``)."""
