"""sketchprep: vector drawings -> sketch-rnn datasets, checked, described, drawn, and trained on.

The format is defined once, in `sketchprep.strokes`.
"""
__version__ = "0.1.0"
