"""Data: helpers for dataset plugins (disjoint splits with :func:`take_split` and
:class:`coldkit.params.SplitParams`, IDX files, image folders, resizing, channel matching), the
training batches (in memory, streamed, augmented), the splits a run reads, and image files.

``coldkit.data`` is the import path documented for dataset plugins; the helpers live in
:mod:`coldkit.data.files` and are re-exported here.
"""

from coldkit.protocols import match_channels
from coldkit.data.files import (
    ALL,
    IMAGE_SUFFIXES,
    SPLITS,
    FolderImages,
    find_idx_file,
    folder_channels,
    folder_class_labels,
    image_files,
    limit_split,
    load_image_folder,
    read_idx,
    read_idx_mapped,
    resize_and_centre_crop,
    resize_images,
    split_indices,
    take_split,
    to_unit_float,
    unreadable_note,
    write_idx,
)

__all__ = [
    "ALL",
    "IMAGE_SUFFIXES",
    "SPLITS",
    "FolderImages",
    "find_idx_file",
    "folder_class_labels",
    "image_files",
    "limit_split",
    "match_channels",
    "folder_channels",
    "load_image_folder",
    "read_idx",
    "read_idx_mapped",
    "resize_and_centre_crop",
    "resize_images",
    "split_indices",
    "take_split",
    "to_unit_float",
    "unreadable_note",
    "write_idx",
]
