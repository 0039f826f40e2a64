"""KnowRL evaluation: benchmark loaders (``benchmarks``), pure metrics (``metrics``), the
model wrapper (``engine``), intrinsic self-consistency (``intrinsic``), scoring/printing/plots
(``report``) and the CLI ``python evaluation/run_eval.py``."""
