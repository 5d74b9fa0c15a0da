"""A filmstrip PNG of an armature under several actions: Cycles on the CPU (16 samples), bones drawn
as thin cylinders parented to them, a camera that follows the pelvis from the side. Rows are
actions, columns are frames; keyed frames get a green bar on top."""
from __future__ import annotations

import os
import tempfile

import numpy as np

TILE = (320, 240)
COLOURS = ((0.15, 0.15, 0.2, 1.0), (0.95, 0.45, 0.1, 1.0), (0.2, 0.5, 0.95, 1.0))


def _cylinder(name: str, length: float, radius: float, material):
    """A mesh along -Y from 0 to -length: parented to a bone it sits at the tail, so it spans the bone."""
    import bpy
    ring = [(np.cos(a) * radius, np.sin(a) * radius) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    verts = [(x, y, z) for y in (0.0, -length) for x, z in ring]
    faces = [(i, (i + 1) % 8, 8 + (i + 1) % 8, 8 + i) for i in range(8)] + [tuple(range(8)), tuple(range(15, 7, -1))]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    mesh.materials.append(material)
    return bpy.data.objects.new(name, mesh)


def dress(arm):
    """Parent a cylinder to every bone longer than a centimetre; returns their shared material."""
    import bpy
    material = bpy.data.materials.new(f"{arm.name}_bones")
    material.use_nodes = True
    scale = arm.matrix_world.to_scale()[0]
    for bone in arm.data.bones:
        if bone.length * scale < 0.01:
            continue
        cyl = _cylinder(f"{arm.name}_{bone.name}", bone.length, 0.018 / scale, material)
        arm.users_scene[0].collection.objects.link(cyl)
        cyl.parent, cyl.parent_type, cyl.parent_bone = arm, 'BONE', bone.name
    return material


def _stage(scene):
    import bpy
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = 16
    scene.render.resolution_x, scene.render.resolution_y = TILE
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    world = bpy.data.worlds.new("filmstrip")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.85, 0.85, 0.88, 1.0)
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", 'SUN'))
    sun.data.energy = 4.0
    sun.rotation_euler = (0.6, 0.2, 0.8)
    scene.collection.objects.link(sun)
    cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    cam.data.type = 'ORTHO'
    cam.data.ortho_scale = 2.4
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def render(arm, material, actions: list, frames: list[int], keyed: set[int], pelvis: np.ndarray, path: str) -> str:
    """One row per action (bones coloured by row); pelvis: (len(frames), 3) world positions the
    camera follows from the side (Blender axes)."""
    import bpy
    from mathutils import Vector
    scene = arm.users_scene[0]
    cam = _stage(scene)
    travel = pelvis[-1] - pelvis[0]
    side = Vector((travel[1], -travel[0], 0.0)).normalized() if np.linalg.norm(travel[:2]) > 0.1 else Vector((1, 0, 0))
    out = np.ones((len(actions) * TILE[1], len(frames) * TILE[0], 4), np.float32)
    tmp = tempfile.mkdtemp(prefix="filmstrip_")
    slot = getattr(arm.animation_data, "action_slot", None)
    for row, action in enumerate(actions):
        material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = COLOURS[row % len(COLOURS)]
        arm.animation_data.action = action
        if slot is not None:
            arm.animation_data.action_slot = action.slots[0]
        for col, frame in enumerate(frames):
            scene.frame_set(frame)
            target = Vector(pelvis[col]) + Vector((0, 0, -0.1))
            cam.location = target + side * 6.0
            cam.rotation_euler = (target - cam.location).to_track_quat('-Z', 'Y').to_euler()
            scene.render.filepath = os.path.join(tmp, f"{row}_{col}.png")
            bpy.ops.render.render(write_still=True)
            image = bpy.data.images.load(scene.render.filepath)
            tile = np.array(image.pixels[:], np.float32).reshape(TILE[1], TILE[0], 4)[::-1]
            bpy.data.images.remove(image)
            if frame in keyed:
                tile[:6] = (0.1, 0.75, 0.2, 1.0)
            tile[:, -1] = (0.3, 0.3, 0.3, 1.0)
            out[row * TILE[1]:(row + 1) * TILE[1], col * TILE[0]:(col + 1) * TILE[0]] = tile
    strip = bpy.data.images.new("filmstrip", out.shape[1], out.shape[0], alpha=True)
    strip.pixels = out[::-1].ravel()
    strip.filepath_raw, strip.file_format = path, 'PNG'
    strip.save()
    return path
