"""The train layer of ddim_lesson (see DESIGN.md: The layers)."""
