"""A persistent, searchable index of images: "have we seen this image before?".

``Index`` keeps one method's codes for every image added and answers one query in milliseconds;
``dupbench index`` and ``dupbench serve`` are its command line and HTTP faces.
"""

from dupbench.index.index import AddResult, Index, IndexFolderError, Match

__all__ = ["AddResult", "Index", "IndexFolderError", "Match"]
