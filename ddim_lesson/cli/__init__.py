"""The cli layer of ddim_lesson (see DESIGN.md: Layout)."""
