"""Grouping messages no article answers ("new topic" labels) into topics, so that an admin can turn a
group into an article: agglomerative clustering (scikit-learn) of their sentence embeddings by cosine
distance, average linkage, cut at a distance rather than a number of clusters."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering

# Average cosine distance below which two groups are one topic (embeddings of paraphrases of one
# question sit within ~0.3-0.4 of each other with MiniLM; unrelated questions beyond 0.6).
TOPIC_DISTANCE = 0.45


def group(vectors: np.ndarray, distance: float = TOPIC_DISTANCE) -> list[list[int]]:
    """Indices of `vectors` (L2-normalised embeddings) grouped by topic, largest group first (ties: in
    order of first appearance)."""
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [[0]]
    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=distance
    ).fit_predict(vectors)
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values(), key=lambda members: (-len(members), members[0]))
