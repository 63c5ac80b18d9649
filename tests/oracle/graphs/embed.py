"""A tiny deterministic embedding for tests: letter frequencies (26 dims), no network.

Texts sharing letters score close; "apple pie" is nearer "apple tart" than "zzz".
"""

from __future__ import annotations

DIMS = 26


def embed(texts: list[str]) -> list[list[float]]:
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        for char in text.lower():
            if "a" <= char <= "z":
                vector[ord(char) - ord("a")] += 1.0
        vectors.append(vector)
    return vectors
