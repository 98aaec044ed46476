"""The errors of PEtab problems (a module of their own: both engines raise them)."""

from __future__ import annotations


class PEtabError(ValueError):
    """A PEtab problem that is missing, invalid, or uses what stiffml does not support."""


class PEtabUnsupported(PEtabError):
    """A valid PEtab problem using something stiffml does not implement (named in the message)."""
