"""Video files and webcams: per-frame recognition with tracking and smoothing."""
