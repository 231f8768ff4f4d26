"""Contract tests: the storage interface's rules, run against every backend (see conftest)."""
