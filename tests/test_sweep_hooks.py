"""Stand-ins for ``xbarsim.runner.run`` that the sweep tests hand to the workers (``run_fn``).

They live in an importable module (not in a test function) because the workers are other
processes: local spawned workers and Dask workers import them by name. Every call appends the
run file's stem to ``<sweep folder>/calls.log`` (one ``O_APPEND`` write), so a test counts the
runs a sweep executed, across processes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def _log_call(out: Any) -> Path:
    out = Path(out)
    log = out.parent.parent / "calls.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{out.stem}\n".encode())
    finally:
        os.close(fd)
    return out


def calls(sweep_dir: Path) -> list[str]:
    """The run ids the hooks executed in ``sweep_dir`` (in order)."""
    log = Path(sweep_dir) / "calls.log"
    return log.read_text().split() if log.exists() else []


def counting_run(cfg: Any, **kwargs: Any) -> Any:
    """``runner.run``, counted."""
    from xbarsim import runner

    _log_call(kwargs["out"])
    return runner.run(cfg, **kwargs)


def raise_on_seed_1(cfg: Any, **kwargs: Any) -> Any:
    """Seed 1 raises (an exception inside the run); other seeds run."""
    _log_call(kwargs["out"])
    if cfg.seed == 1:
        raise RuntimeError("injected failure for seed 1")
    from xbarsim import runner

    return runner.run(cfg, **kwargs)


def sigkill_on_seed_1(cfg: Any, **kwargs: Any) -> Any:
    """Seed 1 kills its own worker process with SIGKILL (as the OOM killer would)."""
    _log_call(kwargs["out"])
    if cfg.seed == 1:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)      # not reached
    from xbarsim import runner

    return runner.run(cfg, **kwargs)


def block_after_epoch_1_on_seed_1(cfg: Any, **kwargs: Any) -> Any:
    """Seed 1 trains one epoch (checkpoint and run file written), then hangs until stopped.

    ``<sweep folder>/blocked`` appears when it hangs. Other seeds run normally.
    """
    out = _log_call(kwargs["out"])
    from xbarsim import runner

    if cfg.seed != 1:
        return runner.run(cfg, **kwargs)
    import xbarsim.train as train_pkg

    original = train_pkg.fit

    def fit_then_hang(*args: Any, **kw: Any) -> Any:
        original(*args, **kw)        # one epoch per call (see runner.run)
        (out.parent.parent / "blocked").write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)

    train_pkg.fit = fit_then_hang
    try:
        return runner.run(cfg, **kwargs)
    finally:
        train_pkg.fit = original
