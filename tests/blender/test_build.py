"""The zip Blender's builder makes holds the add-on and the model, nothing of training or tests."""
import zipfile

from build_extension import WEIGHTS


def test_zip_ships_only_the_extension(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    for needed in ("blender_manifest.toml", "__init__.py", "blender_motion_cvae/operators.py",
                   "model/generator.py", "model/skeleton.py"):
        assert needed in names
    assert not [n for n in names if n.startswith(("training/", "tests/", "scripts/")) or "__pycache__" in n]
    # the generator's weights only, never the evaluation classifier kept beside them
    assert not [n for n in names if n.startswith("model/weights/") and n not in WEIGHTS]


def test_a_release_may_bundle_a_motion_library_which_the_add_on_then_uses(tmp_path, addon, monkeypatch):
    """--library puts it in the zip, never in the source tree; an installed add-on without a
    library in its preferences falls back to a bundled one."""
    import os
    from build_extension import LIBRARY, ROOT, build
    from training.library import build as build_library
    library = str(tmp_path / "lib.safetensors")
    build_library(os.path.join(ROOT, "tests", "fixtures", "cmu"), library)
    names = zipfile.ZipFile(build(str(tmp_path / "dist"), library)).namelist()
    assert LIBRARY in names and not os.path.exists(os.path.join(ROOT, LIBRARY))
    jobs = addon.blender_motion_cvae.jobs
    assert jobs.library_path("") == ""  # the test session's zip bundles none
    installed = os.path.join(os.path.dirname(addon.__file__), LIBRARY)
    monkeypatch.setattr(addon.model.library, "BUNDLED", installed)
    os.makedirs(os.path.dirname(installed), exist_ok=True)
    try:
        with open(library, "rb") as src, open(installed, "wb") as dst:
            dst.write(src.read())
        assert jobs.library_path("") == installed
        assert jobs.library_path(library) == library  # the preferences' own wins
    finally:
        os.remove(installed)
