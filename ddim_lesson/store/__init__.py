"""The store layer of ddim_lesson (see DESIGN.md: Layout)."""
