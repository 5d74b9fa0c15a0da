"""Extension entry point: Blender imports the repository root as the add-on package.

Everything Blender-specific lives in blender_motion_cvae/; the import waits for register() so the
repository also stays importable as a plain folder (pytest, training) where bpy is absent.
"""


def register():
    from . import blender_motion_cvae
    blender_motion_cvae.register()


def unregister():
    from . import blender_motion_cvae
    blender_motion_cvae.unregister()
