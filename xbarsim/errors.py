"""Exception types shared by every layer of xbarsim."""

from __future__ import annotations


class XbarsimError(Exception):
    """Base class of xbarsim's own errors."""


class ConfigError(XbarsimError, ValueError):
    """An invalid configuration; the message names the dotted key, the value and the fix.

    Parameters
    ----------
    errors : list of str
        One message per problem found (all problems are collected before raising).
    source : str, optional
        File the configuration came from, quoted in the message.
    """

    def __init__(self, errors: list[str] | str, source: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.source = source
        head = f"invalid configuration in {source}" if source else "invalid configuration"
        super().__init__(head + ":\n  " + "\n  ".join(self.errors))


class ConvergenceError(XbarsimError, RuntimeError):
    """An iterative solver did not reach its tolerance.

    Attributes
    ----------
    n_iter : int
        Iterations performed.
    residual : float
        Relative residual reached.
    """

    def __init__(self, message: str, *, n_iter: int, residual: float) -> None:
        self.n_iter = n_iter
        self.residual = residual
        super().__init__(message)
