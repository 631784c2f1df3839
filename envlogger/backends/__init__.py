"""Storage backends: where the logger's episodes go."""
