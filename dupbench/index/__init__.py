"""A persistent, searchable index of images: "have we seen this image before?"."""
