"""Scoring trained weights: metrics (pure functions), calibration, robustness, plots and the report."""
