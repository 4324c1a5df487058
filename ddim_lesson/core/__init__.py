"""The core layer of ddim_lesson (see DESIGN.md: The layers)."""

from .flow import eps_to_velocity, flow_grid, flow_progressive, flow_sample

__all__ = ["eps_to_velocity", "flow_grid", "flow_progressive", "flow_sample"]
