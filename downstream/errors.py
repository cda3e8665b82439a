"""Every error the package raises derives from :class:`DownstreamError`.

Catch ``DownstreamError`` to handle any refusal of bad input, conflicting data or unusable fits;
the CLI turns it into a one-line message and a non-zero exit code. The subclasses also derive from
the built-in exception a caller would expect (``ValueError`` for bad values, ``FileExistsError``
for an existing store file), so ``except ValueError`` keeps working.

Examples
--------
>>> from downstream.errors import DownstreamError, OptionError
>>> issubclass(OptionError, DownstreamError) and issubclass(OptionError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["DownstreamError", "OptionError", "NotFittedError", "DataError", "IngestError",
           "RecordError", "StoreError", "StoreConflictError", "StoreExistsError", "LadderError",
           "CollectError", "FitError", "HoldoutError"]


class DownstreamError(Exception):
    """Base class of every error raised by ``downstream``."""


class OptionError(DownstreamError, ValueError):
    """An option (constructor argument or keyword) has a value outside its allowed set."""


class NotFittedError(DownstreamError, ValueError, AttributeError):
    """An estimator or method was used before ``fit`` (a ``ValueError`` and ``AttributeError``
    like scikit-learn's ``NotFittedError``; not its subclass, so that importing the package
    does not import scikit-learn)."""


class DataError(DownstreamError, ValueError):
    """Input data is malformed or cannot support the request (the message names the field)."""


class IngestError(DataError):
    """Malformed lm-eval output; the message names the file (and line)."""


class RecordError(DataError):
    """A sample could not be turned into a record (the message says which field and why)."""


class StoreError(DataError):
    """A store operation was refused (bad name, invalid records, a path that is not a store)."""


class StoreConflictError(StoreError):
    """Records of one task disagree (doc hashes, num_fewshot, task config) across files."""


class StoreExistsError(StoreError, FileExistsError):
    """A (run, checkpoint, task) file exists already and overwriting was not asked for."""


class LadderError(DataError):
    """A ladder file or ladder table is malformed (the message names the file and field)."""


class CollectError(DataError):
    """Bad collection request (the message names the checkpoint or task)."""


class FitError(DownstreamError, ValueError):
    """The data cannot support a fit (too few points, flat or invalid values)."""


class HoldoutError(DataError):
    """A hold-out rule is malformed or selects no run / every run."""
