"""Closed-loop simulation: a MuJoCo tabletop (`world`, `scene`, `tasks`), the scripted expert, sim-eval.

MuJoCo picks its GL backend when it is first imported, so the offscreen default (EGL: Mesa's
software EGL on a CPU machine, a GPU's EGL where there is one) is set here, before anything in
this package imports mujoco; an explicit MUJOCO_GL (e.g. osmesa) wins.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] == "egl":
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
