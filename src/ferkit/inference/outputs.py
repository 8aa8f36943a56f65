"""Names for files written per input, so that inputs with the same name never overwrite each other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath


def unique_stems(paths: Sequence[str]) -> dict[str, str]:
    """A distinct file-name stem per input path: the file's stem where it is unique, else as many
    parent folders (then the suffix) as it takes, joined with "_"; a number as the last resort.

    ``a/x.jpg`` and ``b/x.jpg`` become ``a_x`` and ``b_x``; ``x.jpg`` and ``x.png`` become
    ``x_jpg`` and ``x_png``.
    """
    def candidates(path: str) -> list[str]:
        pure = PurePath(path)
        parts = [p for p in pure.with_suffix("").parts if p not in ("/", "\\", "..", ".")] or [pure.stem or "image"]
        names = ["_".join(parts[-k:]) for k in range(1, len(parts) + 1)]
        return names + [f"{names[-1]}_{pure.suffix.lstrip('.')}"] if pure.suffix else names

    unique = list(dict.fromkeys(paths))
    options = {p: candidates(p) for p in unique}
    chosen: dict[str, str] = {}
    depth = 0
    pending = list(unique)
    while pending:
        names = {p: options[p][min(depth, len(options[p]) - 1)] for p in pending}
        counts = Counter(list(names.values()) + list(chosen.values()))
        exhausted = all(depth >= len(options[p]) - 1 for p in pending)
        for p in pending:
            if counts[names[p]] == 1:
                chosen[p] = names[p]
        pending = [p for p in pending if p not in chosen]
        if exhausted:
            for i, p in enumerate(pending, 1):
                chosen[p] = f"{names[p]}_{i}"
            break
        depth += 1
    return chosen
