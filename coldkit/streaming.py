"""Kept for plugins written against the old path: the streams live in
:mod:`coldkit.data.streaming`."""

from coldkit.data.streaming import ArrayStream, FolderStream, ImageStream

__all__ = ["ArrayStream", "FolderStream", "ImageStream"]
