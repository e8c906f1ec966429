"""Between the batches of a long read, the green threads of ``gateway run`` take turns."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests._servers import ROOT


def test_give_way_hands_over_to_other_green_threads() -> None:
    # a process of its own: eventlet's monkey patching cannot be undone
    script = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import eventlet
        eventlet.monkey_patch()
        from gateway.cooperative import give_way

        ran = []
        eventlet.spawn(ran.append, "other client")
        give_way()  # no blocking call in between: only this hands over
        print(ran)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['other client']"
