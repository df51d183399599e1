"""Writing CLAIMS.md: its head, one preset's section (claim, verdict, figures, table and the
command that rewrites it), and the merge that replaces that section while keeping the others in
order and marking the ones that predate the current statistics. It is separate from running cells
because it only formats and files a finished `Finding`; the runs themselves never touch it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.experiments.common import names

# numpy, pandas and torch are imported by the functions that use them: `bench experiment` imports
# this module to list the experiments, which reads only their yaml.
if TYPE_CHECKING:
    from bench.experiments.common import Experiment, Finding
    from bench.results.store import Runs


CLAIMS_HEAD = """# What bench found

Each section below is written by one command, `bench experiment <name> --write-docs` (the one
printed under it), which runs the sweep (finished runs are reused), then writes the figures under
[claims/](claims/) and the section itself; without `--write-docs` both go into the runs root.
Numbers are medians over n independent runs (seeds) with distribution-free 95% order-statistic
intervals, printed with their exact coverage; below 6 seeds no such interval exists and the median
stands alone, marked "n too small". A comparison of two groups of seeds is an exact rank test, the
comparisons of one table are one Holm family, and the adjusted p stands beside each verdict; a run
that missed (diverged, failed, never reached the target) counts as +∞, never dropped. A claim
counts as reproduced only where these tests support it. "Not reproduced at this scale" means what
it says: the CPU presets are small, and their `--scale gpu` variants are the ones to trust.
"""

#: written into every section by `section`: a section without it predates these statistics
STATS_MARK = "<!-- statistics: exact rank tests, Holm per table, order-statistic intervals -->"


STALE = "> **Not re-run under the current statistics.**"


def stale_note(key: str) -> str:
    """What a section written under the earlier statistics says about itself until it is re-run."""
    name, _, scale = key.partition("-")
    command = write_docs_command(name, scale or "cpu")
    return (f"{STALE} This section was produced under the earlier rules: 95% percentile-bootstrap intervals "
            f"(at 3 to 5 seeds they lie inside [min, max], which itself covers the median less than 95% of the "
            f"time) and, for comparisons, better/worse where the bootstrap interval of P(a beats b) excluded 1/2 "
            f"(a rule that fires on pure noise 19% of the time at 3 vs 3 seeds). Its measurements stand; its "
            f"intervals and verdict are not calibrated. `{command}` replaces it.")


def write_docs_command(name: str, scale: str) -> str:
    """The command that rewrites a section of the tracked docs/CLAIMS.md: printed beside it, so
    the docs say how to reproduce themselves."""
    return f"bench experiment {name}" + (f" --scale {scale}" if scale != "cpu" else "") + " --write-docs"


def write_section(claims: Path, name: str, markdown: str) -> None:
    """Replace (or add) this experiment's section of CLAIMS.md; the others stay as they are, in
    the order of `names()`, and one that predates the current statistics (no `STATS_MARK`) says
    so under its heading. The head is `CLAIMS_HEAD`, so that it always describes these rules."""
    text = claims.read_text() if claims.exists() else ""
    sections = dict(re.findall(r"<!-- experiment:([\w-]+) -->\n(.*?)<!-- /experiment:\1 -->\n", text, flags=re.S))
    head = CLAIMS_HEAD
    for key, old in sections.items():
        if STATS_MARK not in old:  # (re)write its note, so that it says what the current code says
            title, _, rest = re.sub(rf"\n{re.escape(STALE)}[^\n]*\n", "", old, count=1).partition("\n")
            sections[key] = f"{title}\n\n{stale_note(key)}\n{rest}"
    sections[name] = markdown.rstrip("\n") + "\n"
    order = [k for n in names() for k in sorted(sections) if k == n or k.startswith(n + "-")]
    order += sorted(set(sections) - set(order))
    body = "".join(f"\n<!-- experiment:{n} -->\n{sections[n]}<!-- /experiment:{n} -->\n" for n in order)
    claims.parent.mkdir(parents=True, exist_ok=True)
    claims.write_text(head + body)


def section(exp: Experiment, finding: Finding, wall_s: float, runs: Runs) -> str:
    spec = exp.spec
    ok = runs.table[runs.table["status"] == "ok"] if len(runs.table) else runs.table
    figures = "\n".join(f"![{exp.name}]({p.relative_to(exp.docs).as_posix()})" for p in finding.figures)
    return "\n".join([
        f"## {spec.title}" + (f" ({exp.scale.upper()} scale)" if exp.scale == "gpu" else ""),
        "",
        f"**Claim** ({spec.source}): {spec.claim.strip()}",
        "",
        f"**Verdict: {finding.verdict}.** {finding.summary}",
        "",
        figures,
        "",
        finding.body.strip(),
        "",
        f"<sub>`{write_docs_command(exp.name, exp.scale)}` — scale {exp.scale}, {len(runs.table)} runs "
        f"({len(ok)} ok) in {exp.runs_root}, {wall_s / 60:.1f} min wall time for this command; the runs themselves "
        f"took {_run_minutes(runs):.1f} min ({_machine()}), {time.strftime('%Y-%m-%d', time.gmtime())}.</sub>",
        STATS_MARK,
        "",
    ])


def _run_minutes(runs: Runs) -> float:
    """Wall time of the runs themselves (start to summary), whenever they ran: a re-run of the
    command that reuses finished runs is fast, but this still says what the sweep costs."""
    import numpy as np
    import pandas as pd

    table = runs.table
    if table.empty or "started_at" not in table or "finished_at" not in table:
        return 0.0
    spans = pd.to_numeric(table["finished_at"], errors="coerce") - pd.to_numeric(table["started_at"], errors="coerce")
    return float(np.nansum(spans)) / 60


def _machine() -> str:
    import os

    import torch

    device = "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
    return f"{device}, torch {torch.__version__}"
