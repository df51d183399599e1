"""`bench perf optimizers` on a tiny model (the real table needs >= 10M parameters and minutes):
the command runs, prints one row per optimizer with its implementation path, and rejects bad input."""

from __future__ import annotations

import re


def test_perf_optimizers_prints_a_row_per_optimizer(bench_cli):
    res = bench_cli("perf", "optimizers", "lion", "adamw", "muon", "--width", "32", "--layers", "2", "-n", "3",
                    "--clock", "cpu", "--threads", "1")
    assert res.code == 0, res.output
    rows = {line.split("|")[1].strip(): line for line in res.stdout.splitlines() if re.match(r"\| \w+ \| \w+ \|", line)}
    assert set(rows) == {"optimizer", "lion", "adamw", "muon"}
    assert "| loop |" in rows["lion"] and "| fused |" in rows["adamw"]  # tiny model: no compile under auto
    cells = [c.strip() for c in rows["lion"].split("|")[1:-1]]
    assert float(cells[2]) > 0 and float(cells[3]) > 0  # ms/step and copy fraction
    assert cells[6].endswith("x")  # speed-up over pytorch-optimizer's Lion
    assert [c.strip() for c in rows["muon"].split("|")[1:-1]][3] == "-"  # not element-wise: no fraction


def test_perf_optimizers_rejects_unknown_names_and_closure_optimizers(bench_cli):
    res = bench_cli("perf", "optimizers", "nosuch")
    assert res.code == 2 and "unknown optimizer 'nosuch'" in res.output
    res = bench_cli("perf", "optimizers", "sam", "--width", "8", "--layers", "1", "-n", "1")
    assert res.code == 2 and "closure" in res.output
