"""Split expressions: unions of splits and whole-sequence selections.

``train`` is one split; ``train+val`` their union; ``@`` keeps or drops whole
recording sequences (CamVid drives, Cityscapes cities), so a validation set can
hold out a drive whose frames never appear in training:

    train+val@!0001TP      train and val without the 0001TP drive
    train@0001TP           only the 0001TP frames of train
    train@0006R0,0016E5    two drives

Neighbouring frames of one drive are near-duplicates, which is why held-out
*sequences*, not held-out frames, measure how a model does on other streets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError

Pairs = list[tuple[Path, Path]]


@dataclass(frozen=True)
class SplitExpr:
    splits: tuple[str, ...]  # unioned in this order
    keep: tuple[str, ...] = ()  # sequences kept (empty: all)
    drop: tuple[str, ...] = ()  # sequences dropped


def parse_split(expr: str, *, allowed: Sequence[str], dataset: str) -> SplitExpr:
    """Parse ``a+b@SEQ,SEQ`` / ``a+b@!SEQ,SEQ``; DatasetError naming the bad part."""
    head, _, seqs = expr.partition("@")
    splits = tuple(s.strip() for s in head.split("+"))
    for s in splits:
        if s not in allowed:
            raise DatasetError(
                f"{dataset} split must be one of {', '.join(allowed)} (joined with '+', "
                f"optionally '@SEQ' or '@!SEQ'), got {expr!r}"
            )
    if len(set(splits)) != len(splits):
        raise DatasetError(f"{dataset} split {expr!r} names a split twice")
    if "@" not in expr:
        return SplitExpr(splits)
    drop = seqs.startswith("!")
    names = tuple(n.strip() for n in seqs.lstrip("!").split(",") if n.strip())
    if not names:
        raise DatasetError(f"{dataset} split {expr!r}: no sequence after '@'; e.g. train@0001TP or train@!0001TP")
    return SplitExpr(splits, drop=names) if drop else SplitExpr(splits, keep=names)


def split_files(
    expr: str, *, allowed: Sequence[str], dataset: str,
    files_of: Callable[[str], Pairs], sequence_of: Callable[[Path], str],
) -> Pairs:
    """The (image, label) pairs an expression selects; an unknown sequence is an error, not an empty set."""
    parsed = parse_split(expr, allowed=allowed, dataset=dataset)
    pairs = [p for s in parsed.splits for p in files_of(s)]
    present = {sequence_of(img) for img, _ in pairs}
    unknown = sorted(set(parsed.keep + parsed.drop) - present)
    if unknown:
        raise DatasetError(
            f"{dataset} split {expr!r}: no sequence {', '.join(unknown)} in {'+'.join(parsed.splits)}; "
            f"its sequences are {', '.join(sorted(present))}"
        )
    if parsed.keep:
        pairs = [p for p in pairs if sequence_of(p[0]) in parsed.keep]
    pairs = [p for p in pairs if sequence_of(p[0]) not in parsed.drop]
    if not pairs:
        raise DatasetError(f"{dataset} split {expr!r} selects no images")
    return pairs
