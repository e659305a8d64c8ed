"""Engine-free document logic: normalization, heuristic filters, language ID, quality, MinHash.

Nothing in this package imports Apache Beam: every stage is a plain class over `Document`s so it can be
tested, profiled and reused without a pipeline engine.
"""
