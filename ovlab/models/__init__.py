"""Models: the segment-then-classify segmenter (GKC §3, spec §2.1–2.2) and its SCAN / video extensions."""
