"""Run analysis: reading what a training run left in its ``--log_dir`` and summarising it.

Not part of the method: nothing here imports the trainer, Ray, torch or vLLM.

- ``run_logs``: one run's log folder read back (config, metrics, task records), tolerant of torn lines
- ``markdown``: the markdown table every summary is written with
- ``run_report``: one run -> ``report.md`` with plots (``python -m openrlhf.analysis.run_report LOG_DIR``)
- ``runs_table``: several runs side by side, window by window (``python -m openrlhf.analysis.runs_table``)
"""
