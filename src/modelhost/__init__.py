"""modelhost: run Azure ML v1 entry scripts and SDK code as self-hosted web services.

This module holds the version only: the scoring runtime installs this package into every model
environment, so importing it must stay cheap.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
