"""Analysis of finished runs: pure functions over summary.json dicts and per-skill curves.

- `diagnostics`: Domino diagnostics of one run: per-skill onset and completion, the sequentiality index, and
  how much later the rarest skill is learned than the most frequent one.
- `stats`: A/B comparison over arms × seeds: per-skill learn-step medians with censoring, paired speedups with
  bootstrap confidence intervals and Wilcoxon p-values, and Markdown / CSV renderings of the result.
"""
