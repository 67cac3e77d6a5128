"""How each sample is quantified: the one definition of kallisto's per-sample options.

:func:`archs4x.align.fastq`, :func:`~archs4x.align.folder`, :func:`~archs4x.align.quantify`,
the ``archs4x align`` command and :mod:`archs4x.compat.align` all pass these options as one
:class:`QuantOptions` value, so a new option is added (and validated) in one place.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

__all__ = ["QuantOptions"]

Check = Literal["full", "head", False]


@dataclasses.dataclass(frozen=True)
class QuantOptions:
    """Options of one ``kallisto quant`` run, validated and normalised on creation.

    Parameters
    ----------
    fragment_length, sd : float, default 200, 20
        Single-end fragment length mean and standard deviation (ARCHS4's values);
        paired-end samples never use them.
    threads : int, default 1
        kallisto threads per sample (samples already run in parallel).
    extra_args : sequence of str, default ()
        More ``kallisto quant`` arguments (e.g. ``["--bias"]``), passed as a list.
    check : {"full", "head", False}, default "full"
        "head" checks the FASTQ structure and mate read ids of the first 1,000 reads;
        "full" also reads each file to the end (alongside kallisto) to catch truncated
        files and mates of different lengths, which kallisto would accept silently.
        ``True`` means "full".
    kallisto : str, optional
        The kallisto binary (default ``$ARCHS4X_KALLISTO`` or ``kallisto`` on PATH).
    tmp_dir : path-like, optional
        Parent of the per-sample temporary folders (made absolute: tasks may run in
        other processes and other working directories).

    Examples
    --------
    >>> QuantOptions(threads=2, check=True)
    QuantOptions(fragment_length=200.0, sd=20.0, threads=2, extra_args=(), check='full', kallisto=None, tmp_dir=None)
    >>> QuantOptions.from_kwargs({"thread": 2})
    Traceback (most recent call last):
    ...
    TypeError: unknown alignment option 'thread'; the options are: fragment_length, sd, threads, extra_args, check, kallisto, tmp_dir
    >>> QuantOptions(sd=0)
    Traceback (most recent call last):
    ...
    ValueError: sd must be a finite number > 0, not 0.0
    """  # noqa: E501

    fragment_length: float = 200.0
    sd: float = 20.0
    threads: int = 1
    extra_args: tuple[str, ...] = ()
    check: Check = "full"
    kallisto: str | None = None
    tmp_dir: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise through the documented escape hatch
        for name in ("fragment_length", "sd"):
            value = float(getattr(self, name))
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, not {value}")
            set_(self, name, value)
        threads: Any = self.threads
        if isinstance(threads, str):
            threads = threads.strip()
            threads = int(threads) if threads.isdigit() else threads
        elif isinstance(threads, float) and threads.is_integer():
            threads = int(threads)
        if (
            isinstance(threads, bool)
            or not isinstance(threads, numbers.Integral)
            or int(threads) < 1
        ):
            raise ValueError(f"threads must be a positive integer, not {self.threads!r}")
        set_(self, "threads", int(threads))
        if isinstance(self.extra_args, str | bytes):
            raise TypeError("extra_args must be a sequence of arguments, not one string")
        set_(self, "extra_args", tuple(map(str, self.extra_args)))
        check: Any = self.check
        if isinstance(check, bool | np.bool_):
            check = "full" if check else False
        elif isinstance(check, numbers.Integral) and check == 0:
            check = False  # 0 was always taken for False: store it as False
        elif not isinstance(check, str):
            raise ValueError(f"check must be 'full', 'head' or False, not {self.check!r}")
        if check not in ("full", "head", False):
            raise ValueError(f"check must be 'full', 'head' or False, not {self.check!r}")
        set_(self, "check", check)
        if self.kallisto is not None:
            set_(self, "kallisto", os.fspath(self.kallisto))
        if self.tmp_dir is not None:
            set_(self, "tmp_dir", os.path.abspath(os.path.expanduser(self.tmp_dir)))

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> QuantOptions:
        """The options named in ``options``; an unknown name is a ``TypeError`` listing them."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                raise TypeError(
                    f"unknown alignment option {key!r}; the options are: {', '.join(names)}"
                )
        return cls(**options)
