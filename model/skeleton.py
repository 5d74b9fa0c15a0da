"""The canonical skeleton every source is mapped onto, and the rig-name mapper.

Both the BVH loader (training) and the Blender add-on map a source's joint names through
`map_joint_names`, so a rig that trains is a rig that can be animated.
"""
from __future__ import annotations

import re

JOINTS = (
    "pelvis", "spine", "chest", "neck", "head",
    "l_collar", "l_upperarm", "l_forearm", "l_hand",
    "r_collar", "r_upperarm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "l_toe",
    "r_thigh", "r_shin", "r_foot", "r_toe",
)
PARENTS = (-1, 0, 1, 2, 3, 2, 5, 6, 7, 2, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
NUM_JOINTS = len(JOINTS)
INDEX = {name: i for i, name in enumerate(JOINTS)}
# Left/right swap used for mirroring augmentation.
MIRROR = tuple(INDEX[("r_" + n[2:]) if n.startswith("l_") else ("l_" + n[2:]) if n.startswith("r_") else n]
               for n in JOINTS)
UPPER_BODY = tuple(i for i, n in enumerate(JOINTS) if n in ("spine", "chest", "neck", "head") or
                   n[2:] in ("collar", "upperarm", "forearm", "hand"))
LOWER_BODY = tuple(i for i, n in enumerate(JOINTS) if n == "pelvis" or n[2:] in ("thigh", "shin", "foot", "toe"))
LIMBS = {
    "left_arm": tuple(INDEX[n] for n in ("l_collar", "l_upperarm", "l_forearm", "l_hand")),
    "right_arm": tuple(INDEX[n] for n in ("r_collar", "r_upperarm", "r_forearm", "r_hand")),
    "left_leg": tuple(INDEX[n] for n in ("l_thigh", "l_shin", "l_foot", "l_toe")),
    "right_leg": tuple(INDEX[n] for n in ("r_thigh", "r_shin", "r_foot", "r_toe")),
}
FEET = (INDEX["l_foot"], INDEX["l_toe"], INDEX["r_foot"], INDEX["r_toe"])

# Suffix meaning "the end site / tail of this joint", for rigs that have no toe joint
# (CMU Daz-friendly BVH: the foot's End Site is the toe).
END_SITE = "@end"


def _sided(table: dict[str, list[str]]) -> dict[str, list[str]]:
    """Expand '{s}'/'{S}'/'{side}' templates into left and right candidate lists."""
    out: dict[str, list[str]] = {}
    for joint, names in table.items():
        if "{" not in "".join(names):
            out[joint] = names
            continue
        for side, forms in (("l", {"s": "l", "S": "L", "side": "left", "Side": "Left"}),
                            ("r", {"s": "r", "S": "R", "side": "right", "Side": "Right"})):
            out[f"{side}_{joint}"] = [n.format(**forms) for n in names]
    return out


# One table per convention: canonical joint -> candidate source names, best first.
# Names are compared after `normalize_name` (case, namespaces like "mixamorig:" removed).
CONVENTIONS: dict[str, dict[str, list[str]]] = {
    "bandai": _sided({
        "pelvis": ["Hips"], "spine": ["Spine"], "chest": ["Chest"], "neck": ["Neck"], "head": ["Head"],
        "collar": ["Shoulder_{S}"], "upperarm": ["UpperArm_{S}"], "forearm": ["LowerArm_{S}"],
        "hand": ["Hand_{S}"], "thigh": ["UpperLeg_{S}"], "shin": ["LowerLeg_{S}"], "foot": ["Foot_{S}"],
        "toe": ["Toes_{S}", "Toe_{S}", "Foot_{S}" + END_SITE],
    }),
    "motionbuilder": _sided({  # CMU MotionBuilder-friendly, Mixamo (after namespace removal)
        # CMU's LowerBack sits on Hips and its Neck on Spine1 (zero offsets): prefer the joints above.
        "pelvis": ["Hips"], "spine": ["Spine", "LowerBack"], "chest": ["Spine2", "Spine1"],
        "neck": ["Neck1", "Neck"], "head": ["Head"],
        "collar": ["{Side}Shoulder"], "upperarm": ["{Side}Arm"], "forearm": ["{Side}ForeArm"],
        "hand": ["{Side}Hand"], "thigh": ["{Side}UpLeg"], "shin": ["{Side}Leg"], "foot": ["{Side}Foot"],
        "toe": ["{Side}ToeBase", "{Side}Toe", "{Side}Foot" + END_SITE],
    }),
    "daz": _sided({  # CMU Daz-friendly
        "pelvis": ["hip", "hips"], "spine": ["abdomen"], "chest": ["chest"], "neck": ["neck"], "head": ["head"],
        "collar": ["{s}Collar"], "upperarm": ["{s}Shldr"], "forearm": ["{s}ForeArm"], "hand": ["{s}Hand"],
        "thigh": ["{s}Thigh"], "shin": ["{s}Shin"], "foot": ["{s}Foot"],
        "toe": ["{s}Toe", "{s}Foot" + END_SITE],
    }),
    "asf": _sided({  # CMU ASF names as written by amc2bvh; lowerback starts at the root, so prefer upperback
        "pelvis": ["root", "hips", "hip"], "spine": ["upperback", "lowerback"], "chest": ["thorax"],
        "neck": ["lowerneck", "neck"], "head": ["head", "upperneck"],
        "collar": ["{s}clavicle"], "upperarm": ["{s}humerus"], "forearm": ["{s}radius"],
        "hand": ["{s}wrist", "{s}hand"], "thigh": ["{s}femur"], "shin": ["{s}tibia"], "foot": ["{s}foot"],
        "toe": ["{s}toes", "{s}foot" + END_SITE],
    }),
    "smpl": _sided({
        "pelvis": ["pelvis", "Pelvis"], "spine": ["spine1"], "chest": ["spine3"], "neck": ["neck"],
        "head": ["head"], "collar": ["{side}_collar"], "upperarm": ["{side}_shoulder"],
        "forearm": ["{side}_elbow"], "hand": ["{side}_wrist"], "thigh": ["{side}_hip"],
        "shin": ["{side}_knee"], "foot": ["{side}_ankle"], "toe": ["{side}_foot"],
    }),
    "rigify": _sided({  # metarig names, and the DEF- deform bones of a generated rig
        "pelvis": ["DEF-spine", "spine"], "spine": ["DEF-spine.001", "spine.001"],
        "chest": ["DEF-spine.003", "spine.003"], "neck": ["DEF-spine.004", "spine.004"],
        "head": ["DEF-spine.006", "spine.006", "DEF-spine.005", "spine.005"],
        "collar": ["DEF-shoulder.{S}", "shoulder.{S}"], "upperarm": ["DEF-upper_arm.{S}", "upper_arm.{S}"],
        "forearm": ["DEF-forearm.{S}", "forearm.{S}"], "hand": ["DEF-hand.{S}", "hand.{S}"],
        "thigh": ["DEF-thigh.{S}", "thigh.{S}"], "shin": ["DEF-shin.{S}", "shin.{S}"],
        "foot": ["DEF-foot.{S}", "foot.{S}"], "toe": ["DEF-toe.{S}", "toe.{S}"],
    }),
    "unreal": _sided({  # UE4 / UE5 Mannequin
        "pelvis": ["pelvis"], "spine": ["spine_01"], "chest": ["spine_05", "spine_03", "spine_02"],
        "neck": ["neck_01"], "head": ["head"], "collar": ["clavicle_{s}"], "upperarm": ["upperarm_{s}"],
        "forearm": ["lowerarm_{s}"], "hand": ["hand_{s}"], "thigh": ["thigh_{s}"], "shin": ["calf_{s}"],
        "foot": ["foot_{s}"], "toe": ["ball_{s}"],
    }),
}


class MappingError(ValueError):
    """A rig whose bones can't be matched to the canonical joints; the message names them."""

    def __init__(self, missing: list[str], convention: str, found: int):
        self.missing, self.convention, self.found = missing, convention, found
        super().__init__(
            f"Could not map {len(missing)} of {NUM_JOINTS} canonical joints ({', '.join(missing)}); "
            f"closest naming convention: {convention} ({found} mapped). "
            "Map these bones by hand (Motion panel > Bone Map) or rename them.")


def normalize_name(name: str) -> str:
    """Case-fold and drop namespaces such as 'mixamorig:' or 'Character1:'."""
    return name.rsplit(":", 1)[-1].strip().lower()


def map_joint_names(names: list[str], overrides: dict[str, str] | None = None,
                    required: tuple[str, ...] = JOINTS) -> dict[str, str]:
    """Map canonical joint -> source joint name (or 'name@end' for an end site / bone tail).

    Picks the convention that maps the most joints, then applies user `overrides`
    (canonical -> source name; an empty name means "automatic", as an unset UI field does).
    Raises MappingError naming what is still missing.
    """
    by_norm: dict[str, str] = {}
    for n in names:
        by_norm.setdefault(normalize_name(n), n)
    best_name, best = "", {}
    for convention, table in CONVENTIONS.items():
        mapping = {}
        for joint, candidates in table.items():
            for cand in candidates:
                base, end = (cand[:-len(END_SITE)], END_SITE) if cand.endswith(END_SITE) else (cand, "")
                hit = by_norm.get(normalize_name(base))
                if hit is not None:
                    mapping[joint] = hit + end
                    break
        if len(mapping) > len(best):
            best_name, best = convention, mapping
    for joint, source in (overrides or {}).items():
        if not source:
            continue
        if joint not in INDEX:
            raise ValueError(f"Unknown canonical joint {joint!r}; expected one of {', '.join(JOINTS)}")
        base = source[:-len(END_SITE)] if source.endswith(END_SITE) else source
        if base not in names:
            raise ValueError(f"Bone {base!r} mapped to {joint} does not exist in this rig")
        best[joint] = source
    missing = [j for j in required if j not in best]
    if missing:
        raise MappingError(missing, best_name or "none", len(best))
    return best


def split_end_site(source: str) -> tuple[str, bool]:
    """('foot', True) for 'foot@end': the joint sits at that bone's end site / tail."""
    if source.endswith(END_SITE):
        return source[:-len(END_SITE)], True
    return source, False


_SAFE = re.compile(r"[^a-z0-9]+")


def label_key(label: str) -> str:
    """Normalised label used in vocabularies ('Walk Turn Left' -> 'walk-turn-left')."""
    return _SAFE.sub("-", label.strip().lower()).strip("-")
