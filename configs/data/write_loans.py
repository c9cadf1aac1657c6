"""Write loans.csv: a synthetic mixed-type table (numbers, categories, free text, gaps).

Whether a loan was repaid depends on income, debt, the loan's purpose, the region and words
of the applicant's note, so every kind of column carries signal. Run it again to get the
same file: `python configs/data/write_loans.py [ROWS] [PATH]` (defaults: 400, loans.csv here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

PURPOSES = ["car", "home", "education", "business", "holiday"]
REGIONS = ["north", "south", "east", "west"]
GOOD_WORDS = ["stable", "salaried", "savings", "permanent"]
BAD_WORDS = ["late", "gambling", "overdraft", "unemployed"]
FILLER = ["need", "money", "for", "my", "family", "plan", "soon", "please"]


def loans(rows: int, seed: int = 0, gaps: float = 0.05) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, rows).round(1)
    debt = rng.gamma(2.0, 8.0, rows).round(1)
    age = rng.integers(18, 80, rows)
    purpose = rng.choice(PURPOSES, rows)
    region = rng.choice(REGIONS, rows)
    tone = rng.choice([-1, 0, 1], rows)
    notes = [
        " ".join(
            rng.choice(FILLER, 4).tolist()
            + ([rng.choice(GOOD_WORDS)] if t > 0 else [rng.choice(BAD_WORDS)] if t < 0 else [])
        )
        for t in tone
    ]
    score = (
        (income - 50) / 15
        - (debt - 16) / 11
        + 1.2 * tone
        + np.select([purpose == "business", purpose == "holiday"], [0.8, -0.8], 0.0)
        + np.where(region == "north", 0.6, 0.0)
    )
    frame = pd.DataFrame(
        {
            "income": income,
            "debt": debt,
            "age": age,
            "purpose": purpose,
            "region": region,
            "note": notes,
            "repaid": np.where(score + rng.normal(0, 0.5, rows) > 0, "yes", "no"),
        }
    )
    for column in ("income", "region"):  # some cells left empty, as in real exports
        frame.loc[rng.random(rows) < gaps, column] = np.nan
    return frame


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    path = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("loans.csv")
    loans(count).to_csv(path, index=False)
    print(f"wrote {count} rows to {path}")
