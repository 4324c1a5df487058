"""The core layer of ddim_lesson (see DESIGN.md: Layout)."""
