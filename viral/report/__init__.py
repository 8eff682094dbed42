"""The paper's tables and figures from the repository's DVC experiments (`python -m viral.report`).

collect (experiments -> Runs) · groups (seeds of one configuration) · stats (mean ± sd, paired tests) ·
tables (Table 1, Table 2) · figures (PNG) · page (HTML and markdown) · build (the reports/ folder) ·
sweep (queue the paper's grids: `python -m viral.report.sweep`).
"""
