"""Evaluation: ScanNet-benchmark semantic scores, label transfer from the map, figures.

The figures live in ``alster_mapping.eval.plots`` (imported on demand, it pulls in
matplotlib).
"""

from .metrics import SemanticScores, confusion_matrix, evaluate_points, map_raw_labels, transfer_labels

__all__ = ["SemanticScores", "confusion_matrix", "evaluate_points", "map_raw_labels", "transfer_labels"]
