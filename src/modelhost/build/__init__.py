"""Source snapshots and cached environment builds.

* :mod:`~modelhost.build.snapshot`: a project folder as a deterministic, content-addressed zip;
* :mod:`~modelhost.build.environment`: the environment lookup chain (workspace cache, machine
  cache, build with uv) and :class:`EnvironmentBuilder`;
* :mod:`~modelhost.build.wheel`: modelhost's base layer as a wheel of the running installation;
* :mod:`~modelhost.build.interpreters`: which Python builds an environment.
"""

from modelhost.build.environment import BuiltEnvironment, EnvironmentBuilder
from modelhost.build.snapshot import Snapshot, check_entry_script, extract_snapshot, list_files, make_snapshot

__all__ = [
    "BuiltEnvironment",
    "EnvironmentBuilder",
    "Snapshot",
    "check_entry_script",
    "extract_snapshot",
    "list_files",
    "make_snapshot",
]
