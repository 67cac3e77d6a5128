"""Files in the exact ARCHS4 layout, made by archs4x: the example data and synthetic files.

* :func:`example_file` - the small embedded example the demo, doctests, notebooks and
  tests use (written on first use into the cache folder).
* :func:`write_archs4_file` - a synthetic file of any shape, layout version and level.
* :func:`write_realscale_file` - a file with the real file's chunk structure (67,186 x
  1,000,000 in chunks of (2000, 1)) in minutes, for benchmarks.
* :func:`serve_http` - serve a folder over HTTP with byte ranges on 127.0.0.1, to try
  remote reads without a network.
"""

from .serve import serve_http
from .synthetic import SAMPLE_FIELDS, example_file, write_archs4_file

__all__ = ["SAMPLE_FIELDS", "example_file", "serve_http", "write_archs4_file"]
