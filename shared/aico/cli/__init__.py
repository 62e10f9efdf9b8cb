"""Command-line interface: ``aico`` (see ``aico --help``)."""
