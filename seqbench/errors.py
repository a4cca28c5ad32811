"""One exception root, with subclasses whose messages say what to do next."""
from __future__ import annotations


class SeqbenchError(Exception):
    """Base class of every error seqbench raises on purpose."""


class ManualDownloadRequired(SeqbenchError):
    """The source files must be obtained by the user (registration, license)."""


class DataNotPrepared(SeqbenchError):
    """A dataset was loaded before `seqbench prepare` built it."""


class BadInputError(SeqbenchError):
    """An input file is malformed; the message names the file and the problem."""

    def __init__(self, path: str, problem: str, hint: str | None = None):
        self.path = path
        self.problem = problem
        self.hint = hint
        msg = f"{path}: {problem}"
        if hint:
            msg += f"\n  {hint}"
        super().__init__(msg)

    def __reduce__(self):
        # picklable with its own arguments: raised in a worker process, it must arrive whole in the parent
        # (the default would call BadInputError(message) and break the process pool)
        return (type(self), (self.path, self.problem, self.hint))


class OutputPathError(SeqbenchError):
    """An output cannot be written where it was asked for (a file in the way, a folder where a file goes, ...)."""


class UnknownNameError(SeqbenchError, KeyError):
    """An unknown registry name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else ""
