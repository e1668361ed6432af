"""pip entry point; all metadata lives in setup.cfg (shared with the CMake/colcon build)."""

from setuptools import setup

setup()
