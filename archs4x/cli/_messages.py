"""Messages of the command line: warnings as one plain line each, missing optional packages
named with the extra that installs them."""

from __future__ import annotations

import contextlib
import sys
import warnings

__all__ = ["missing_extra", "warnings_to_stderr"]

#: URL protocols whose filesystem package an archs4x extra installs.
EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}


@contextlib.contextmanager
def warnings_to_stderr(command: str):
    """Show the warnings raised in the block as ``archs4x COMMAND: warning: ...`` lines.

    Examples
    --------
    >>> import contextlib, io, warnings
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err), warnings_to_stderr("versions"):
    ...     warnings.warn("offline; using the bundled catalog", RuntimeWarning)
    >>> err.getvalue()
    'archs4x versions: warning: offline; using the bundled catalog\\n'
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = str(w.message)
                if text not in seen:
                    seen.add(text)
                    print(f"archs4x {command}: warning: {text}", file=sys.stderr)


def missing_extra(exc: ImportError, protocol: str | None = None) -> str:
    """One line saying which package is missing and how to install it.

    Examples
    --------
    >>> missing_extra(ImportError("Install s3fs to access S3"), "s3")
    "s3:// URLs need the s3fs package: pip install 'archs4x[s3]'"
    """
    text = str(exc)
    if protocol is None:
        protocol = next((p for p, (pkg, _) in EXTRAS.items() if pkg in text), None)
    if protocol in EXTRAS:
        package, extra = EXTRAS[protocol]
        return f"{protocol}:// URLs need the {package} package: pip install 'archs4x[{extra}]'"
    missing = getattr(exc, "name", None)
    return f"{text.rstrip('.')}" + (f" (pip install {missing})" if missing else "")
