"""The paper's directional claims (config/paper_claims.yaml), each checked against the row of the
significance table that measures it: supported, contradicted or inconclusive at the
Holm-corrected level."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from stylized_dpo.evals.helm_cells import LOWER_IS_BETTER
from stylized_dpo.io import DataError
from stylized_dpo.records import JUDGE_CRITERIA

CLAIM_COLUMNS: tuple[str, ...] = (
    "id",
    "model",
    "reference",
    "measure",
    "direction",
    "difference",
    "ci_low",
    "ci_high",
    "p_holm",
    "status",
    "quote",
)


@dataclass(frozen=True)
class Claim:
    """One directional claim of the paper (config/paper_claims.yaml)."""

    id: str
    model: str
    reference: str
    measure: str
    direction: str
    quote: str

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"claim {self.id}: direction must be higher or lower")
        parts = self.measure.split(":")
        if not (
            (parts[0] == "judge" and len(parts) == 2 and parts[1] in JUDGE_CRITERIA)
            or (parts[0] == "helm" and len(parts) == 3 and parts[1] in LOWER_IS_BETTER)
        ):
            raise ValueError(
                f"claim {self.id}: measure {self.measure!r} is not judge:<criterion> or "
                "helm:<family>:<scenario>"
            )

    def key(self) -> tuple[str, str, str]:
        parts = self.measure.split(":")
        return (parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def load_claims(path: str | os.PathLike[str]) -> list[Claim]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise DataError(path, None, "claims", "expected a list under `claims`")
    claims = []
    fields = set(Claim.__dataclass_fields__)
    for i, item in enumerate(data["claims"]):
        if not isinstance(item, dict) or set(item) != fields:
            raise DataError(
                path, None, f"claims[{i}]", f"expected exactly the keys {sorted(fields)}"
            )
        try:
            claims.append(Claim(**{k: str(v) for k, v in item.items()}))
        except ValueError as e:
            raise DataError(path, None, f"claims[{i}]", str(e)) from None
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise DataError(path, None, "claims", "claim ids repeat")
    return claims


def claim_status(table: pd.DataFrame, claims: Sequence[Claim], alpha: float) -> pd.DataFrame:
    """supported / contradicted / inconclusive at the Holm-corrected level; `not measured`
    where the run has no such row (e.g. HELM left the cell out)."""
    out = []
    for claim in claims:
        source, family, scenario = claim.key()
        measured = table[
            (table["source"] == source)
            & (table["family"] == family)
            & (table["scenario"] == scenario)
        ]
        sign = 1.0
        match = measured[
            (measured["model"] == claim.model) & (measured["reference"] == claim.reference)
        ]
        if match.empty:  # the table may hold the comparison the other way round
            sign = -1.0
            match = measured[
                (measured["model"] == claim.reference) & (measured["reference"] == claim.model)
            ]
        record = {
            c: getattr(claim, c)
            for c in ("id", "model", "reference", "measure", "direction", "quote")
        }
        if match.empty:
            out.append(
                {
                    **record,
                    "difference": math.nan,
                    "ci_low": math.nan,
                    "ci_high": math.nan,
                    "p_holm": math.nan,
                    "status": "not measured",
                }
            )
            continue
        row = match.iloc[0]
        diff = sign * float(row["difference"])
        lo, hi = sorted((sign * float(row["ci_low"]), sign * float(row["ci_high"])))
        p = float(row["p_holm"])
        want = 1.0 if claim.direction == "higher" else -1.0
        if p < alpha and diff * want > 0:
            status = "supported"
        elif p < alpha and diff * want < 0:
            status = "contradicted"
        else:
            status = "inconclusive"
        out.append(
            {
                **record,
                "difference": diff,
                "ci_low": lo,
                "ci_high": hi,
                "p_holm": p,
                "status": status,
            }
        )
    return pd.DataFrame(out, columns=list(CLAIM_COLUMNS))
