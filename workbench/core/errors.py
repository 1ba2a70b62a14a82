"""Errors that are the user's to fix: the CLI prints them as one line and exits with status 2."""


class WorkbenchError(Exception):
    """Base class of every error with a message meant for the user."""


class ConfigError(WorkbenchError):
    """A preset, override or command-line value is wrong (the message names file, key and value)."""


class BundleError(WorkbenchError):
    """A model bundle is missing, corrupt or incompatible."""


class TrainingDiverged(WorkbenchError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class AdaptationDiverged(WorkbenchError):
    """Test-time adaptation overflowed (non-finite parameters) at some inner step; the message names it."""


class Cancelled(WorkbenchError):
    """A long computation (a playground adaptation) was cancelled by the user."""

    @classmethod
    def raise_if_set(cls, cancel) -> None:
        """Raise if ``cancel`` (a threading.Event, or None) is set: the check between adaptation steps."""
        if cancel is not None and cancel.is_set():
            raise cls("cancelled")


def is_out_of_memory(error: BaseException) -> bool:
    """A MemoryError, or torch's allocator failing ("out of memory", "can't allocate memory")."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text)


def with_path(error: OSError, path) -> OSError:
    """The same OS error, naming the file it happened on (a failed write to an open file names none)."""
    if error.filename is not None:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))
