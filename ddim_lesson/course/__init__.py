"""The course layer of ddim_lesson (see DESIGN.md: Layout)."""
