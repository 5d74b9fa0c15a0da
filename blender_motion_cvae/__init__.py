"""Everything that runs inside Blender; the only package that imports bpy."""
import bpy

from . import operators, panel, prefs, properties

_CLASSES = prefs.CLASSES + operators.CLASSES + panel.CLASSES


def register():
    prefs.add_site_packages()
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
    prefs.remove_site_packages()
