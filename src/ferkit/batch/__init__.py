"""Batch prediction over many images and videos: worker processes, resumable writers (JSON lines,
CSV, Parquet) and Ray Data. Above inference and video: it drives Recognizers, never the reverse."""
