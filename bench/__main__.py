"""``python -m bench``: run the benchmarks, print one table, write ``bench/results.json``."""

from bench.run import main

raise SystemExit(main())
