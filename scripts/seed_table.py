"""Shared by the reproduction scripts: collect metrics per setting over seeds and print
mean +- std."""

from __future__ import annotations

import statistics


def record(table: dict[str, dict[str, list[float]]], name: str, seed: int,
           values: dict[str, float]) -> None:
    """Append one seed's ``values`` to ``table[name]`` and print them."""
    row = table.setdefault(name, {})
    for key, value in values.items():
        row.setdefault(key, []).append(value)
    print(name, seed, {k: round(v, 4) for k, v in values.items()}, flush=True)


def print_table(title: str, first_column: str, table: dict[str, dict[str, list[float]]],
                columns: list[str], digits: int = 3) -> None:
    width = max(len(first_column), *(len(name) for name in table)) + 2
    print(f"\n{title}")
    print(f"{first_column:<{width}}" + "".join(f"{c.removeprefix('test/'):>30}" for c in columns))
    for name, row in table.items():
        print(f"{name:<{width}}" + "".join(
            f"{statistics.mean(row[c]):>{28 - digits - 3}.{digits}f} +-{statistics.pstdev(row[c]):.{digits}f}"
            for c in columns))
