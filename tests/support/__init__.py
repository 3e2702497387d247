"""Helpers shared by the tests: free ports, polling with a deadline, process fixtures."""
