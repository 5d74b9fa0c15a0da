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
