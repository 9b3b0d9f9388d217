"""AMI, for FastAGI sites: live phone state and the callbacks' calls (docs/fastagi.md)."""

from .client import AmiClient, AmiError, AmiRefused
from .phones import AmiPhones

__all__ = ["AmiClient", "AmiError", "AmiRefused", "AmiPhones"]
