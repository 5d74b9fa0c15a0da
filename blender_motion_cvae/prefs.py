"""Add-on preferences: where the weights and the motion library come from, and PyTorch installed on request.

Blender ships numpy but not PyTorch or safetensors. "Install PyTorch" runs Blender's own Python's pip
with --target into this extension's user folder (kept across extension upgrades), pinned so that
a CPU install never pulls a multi-GB CUDA build by accident.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading

import bpy
from bpy.props import EnumProperty, StringProperty

from . import jobs

ADDON = __package__.rpartition(".")[0]
TORCH = "torch==2.13.0"
SAFETENSORS = "safetensors==0.8.0"
INDEXES = {"CPU": "https://download.pytorch.org/whl/cpu", "CUDA": "https://download.pytorch.org/whl/cu128"}


def addon_prefs(context):
    addon = context.preferences.addons.get(ADDON)
    return addon.preferences if addon else None


def site_packages(create: bool = False) -> str:
    return bpy.utils.extension_path_user(ADDON, path="site-packages", create=create)


def add_site_packages() -> None:
    """Put the private site-packages last on sys.path, so Blender's own numpy always wins."""
    path = site_packages()
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)
        importlib.invalidate_caches()


def remove_site_packages() -> None:
    path = site_packages()
    if path in sys.path:
        sys.path.remove(path)


def pip_commands(variant: str, target: str) -> list[list[str]]:
    """torch from PyTorch's own index (CPU or CUDA build), safetensors from PyPI."""
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--target", target]
    return [pip + ["--index-url", INDEXES[variant], TORCH], pip + [SAFETENSORS]]


class MotionCVAEPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    weights_path: StringProperty(name="Weights", subtype='FILE_PATH',
                                 description="A .safetensors checkpoint to use instead of the shipped one "
                                             "(empty: shipped weights)")  # type: ignore[valid-type]
    library_path: StringProperty(name="Motion Library", subtype='FILE_PATH',
                                 description="A motion library (.safetensors) built from mocap with `python -m "
                                             "training.library`: fills between full-body keys, and Extend, draw on "
                                             "its nearest recorded motion (empty: the one bundled with this release, if "
                                             "any, else the model alone)")  # type: ignore[valid-type]
    torch_variant: EnumProperty(name="Build", items=[("CPU", "CPU", "Works everywhere (about 200 MB)"),
                                                     ("CUDA", "CUDA", "NVIDIA GPUs (several GB)")])  # type: ignore[valid-type]

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "weights_path")
        layout.prop(self, "library_path")
        missing = jobs.missing_runtime()
        row = layout.row()
        row.label(text=f"Not installed: {', '.join(missing)}" if missing else "PyTorch is installed",
                  icon='ERROR' if missing else 'CHECKMARK')
        row.prop(self, "torch_variant", text="")
        row.operator("motion_cvae.install_torch", icon='IMPORT')
        layout.label(text="Model weights: CC BY-NC 4.0, trained on the Bandai Namco Research Motion Dataset "
                          "(non-commercial use).", icon='INFO')


class MOTION_CVAE_OT_install_torch(bpy.types.Operator):
    """Download and install PyTorch and safetensors into this extension's folder (needs the network)"""
    bl_idname = "motion_cvae.install_torch"
    bl_label = "Install PyTorch"

    def execute(self, context):
        if not bpy.app.online_access:
            self.report({'ERROR'}, "Online access is off: allow it in Preferences > System > Network, then retry.")
            return {'CANCELLED'}
        prefs = addon_prefs(context)
        variant = prefs.torch_variant if prefs else "CPU"
        self._log: list[str] = []
        self._thread = threading.Thread(target=self._install, args=(variant, site_packages(create=True)),
                                        daemon=True)
        self._thread.start()
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(f"Installing PyTorch ({variant}); this can take minutes...")
        return {'RUNNING_MODAL'}

    def _install(self, variant: str, target: str) -> None:
        for cmd in pip_commands(variant, target):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                self._log.append(lines[-1] if lines else f"pip exited with {done.returncode}")
                return

    def modal(self, context, event):
        if event.type != 'TIMER' or self._thread.is_alive():
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        if self._log:
            self.report({'ERROR'}, f"Installing PyTorch failed: {self._log[0]}")
            return {'CANCELLED'}
        add_site_packages()
        self.report({'INFO'}, "PyTorch installed.")
        return {'FINISHED'}


CLASSES = (MotionCVAEPreferences, MOTION_CVAE_OT_install_torch)
