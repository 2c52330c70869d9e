"""skilltrain: train networks on skill-structured data and measure, skill by skill, how they learn."""

__version__ = "0.1.0"
