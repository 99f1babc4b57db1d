"""The built-in rebalance planner: pure, deterministic, typed (see :mod:`ballast.rebalance.planner`)."""
