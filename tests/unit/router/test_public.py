"""The router's public surface, pinned."""

from __future__ import annotations

import modelhost.router


def test_exported_names() -> None:
    assert sorted(modelhost.router.__all__) == [
        "Replica", "Router", "RouterConfig", "RoutingTable", "ServiceLoad", "ServiceRoute",
        "read_table_file", "run", "table_from_json", "table_to_json",
    ]
    for name in modelhost.router.__all__:
        assert hasattr(modelhost.router, name)
