"""``python -m modelhost.control``: run the control plane for the workspace in ``MODELHOST_HOME``.

This is what clients spawn in the background. A failure to start prints the one-line reason and a
marker line with the error's JSON (read back by the spawning client), then exits with status 1.
"""

from __future__ import annotations

import json
import sys

from modelhost.control.server import configure_logging, serve
from modelhost.errors import ModelhostError
from modelhost.sdk.local import START_ERROR_MARKER
from modelhost.settings import Settings


def main() -> int:
    configure_logging()
    try:
        serve(Settings.from_env())
    except ModelhostError as exc:
        payload = {**exc.to_payload(), "status": exc.status_code}
        print(f"modelhost control plane: error: {exc.one_line()}", file=sys.stderr)
        print(START_ERROR_MARKER + json.dumps(payload), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
