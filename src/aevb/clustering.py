"""How well unsupervised clusters match labels the model never saw: accuracy, purity and NMI.

Cluster indices are arbitrary, so accuracy first finds the one-to-one matching of clusters to
labels that agrees with the most datapoints (the Hungarian algorithm on the contingency table),
then counts the agreements. With more clusters than labels the unmatched clusters count as wrong.
This is the tutorial's measure (its `cluster_acc`), and VaDE's.

Purity lets each cluster take its most frequent label, so two clusters may share one: a label
split over two clusters costs nothing, and a label that no cluster holds most of is all wrong.
It is never below the accuracy. Rui Shu's GMVAE code scores clusters this way (`test_acc`), so
its 0.835 compares with purity, not with accuracy.
"""

from __future__ import annotations

import numpy as np


def contingency(clusters: np.ndarray, labels: np.ndarray, n_clusters: int, n_labels: int) -> np.ndarray:
    """counts[c, l]: the datapoints put in cluster c whose label is l, (C, L)."""
    counts = np.zeros((n_clusters, n_labels), dtype=np.int64)
    np.add.at(counts, (np.asarray(clusters), np.asarray(labels)), 1)
    return counts


def match(clusters: np.ndarray, labels: np.ndarray, n_clusters: int, n_labels: int) -> np.ndarray:
    """The label each cluster is matched to, (C,); -1 for a cluster left without one."""
    from scipy.optimize import linear_sum_assignment

    counts = contingency(clusters, labels, n_clusters, n_labels)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    label_of = np.full(n_clusters, -1, dtype=np.int64)
    label_of[rows] = cols
    return label_of


def accuracy(clusters: np.ndarray, labels: np.ndarray, n_clusters: int, n_labels: int) -> float:
    """The fraction of datapoints whose cluster is matched to their label."""
    label_of = match(clusters, labels, n_clusters, n_labels)
    return float(np.mean(label_of[np.asarray(clusters)] == np.asarray(labels)))


def purity(clusters: np.ndarray, labels: np.ndarray, n_clusters: int, n_labels: int) -> float:
    """The fraction of datapoints whose label is the most frequent one in their cluster."""
    counts = contingency(clusters, labels, n_clusters, n_labels)  # (C, L)
    return float(counts.max(axis=1).sum() / counts.sum())


def nmi(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Normalized mutual information between clusters and labels (arithmetic normalisation)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(labels, clusters))
