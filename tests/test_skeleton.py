"""The rig-name mapper on full, realistic bone lists of every convention it claims to read."""
import pytest

from model.skeleton import JOINTS, MIRROR, PARENTS, MappingError, label_key, map_joint_names, split_end_site

SIDES = {"l": {"s": "l", "S": "L", "side": "left", "Side": "Left"},
         "r": {"s": "r", "S": "R", "side": "right", "Side": "Right"}}


def expected(pelvis, spine, chest, neck, head, collar, upperarm, forearm, hand, thigh, shin, foot, toe):
    """The full canonical -> bone mapping, sided templates ('{Side}Arm') expanded for both sides."""
    out = {"pelvis": pelvis, "spine": spine, "chest": chest, "neck": neck, "head": head}
    for side, forms in SIDES.items():
        for joint, name in (("collar", collar), ("upperarm", upperarm), ("forearm", forearm), ("hand", hand),
                            ("thigh", thigh), ("shin", shin), ("foot", foot), ("toe", toe)):
            out[f"{side}_{joint}"] = name.format(**forms)
    return out


def both(*templates):
    return [t.format(**forms) for t in templates for forms in SIDES.values()]


BANDAI = ["joint_Root", "Hips", "Spine", "Chest", "Neck", "Head"] + both(
    "Shoulder_{S}", "UpperArm_{S}", "LowerArm_{S}", "Hand_{S}", "UpperLeg_{S}", "LowerLeg_{S}", "Foot_{S}",
    "Toes_{S}")
CMU_MOTIONBUILDER = ["Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head", "LHipJoint", "RHipJoint",
                     "LThumb", "RThumb"] + both(
    "{Side}Shoulder", "{Side}Arm", "{Side}ForeArm", "{Side}Hand", "{Side}FingerBase", "{Side}HandIndex1",
    "{Side}UpLeg", "{Side}Leg", "{Side}Foot", "{Side}ToeBase")
CMU_DAZ = ["hip", "abdomen", "chest", "neck", "head", "leftEye", "rightEye"] + both(
    "{s}Collar", "{s}Shldr", "{s}ForeArm", "{s}Hand", "{s}Thumb1", "{s}Thumb2", "{s}Index1", "{s}Index2",
    "{s}Mid1", "{s}Mid2", "{s}Ring1", "{s}Ring2", "{s}Pinky1", "{s}Pinky2", "{s}Buttock", "{s}Thigh",
    "{s}Shin", "{s}Foot")
ASF = ["root", "lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head"] + both(
    "{s}hipjoint", "{s}femur", "{s}tibia", "{s}foot", "{s}toes", "{s}clavicle", "{s}humerus", "{s}radius",
    "{s}wrist", "{s}hand", "{s}fingers", "{s}thumb")
MIXAMO = ["mixamorig:" + n for n in ["Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End"] + both(
    "{Side}Shoulder", "{Side}Arm", "{Side}ForeArm", "{Side}Hand", "{Side}HandThumb1", "{Side}HandThumb2",
    "{Side}HandIndex1", "{Side}HandIndex2", "{Side}HandMiddle1", "{Side}UpLeg", "{Side}Leg", "{Side}Foot",
    "{Side}ToeBase", "{Side}Toe_End")]
SMPL = ["pelvis", "spine1", "spine2", "spine3", "neck", "head", "jaw"] + both(
    "{side}_hip", "{side}_knee", "{side}_ankle", "{side}_foot", "{side}_collar", "{side}_shoulder",
    "{side}_elbow", "{side}_wrist", "{side}_hand")
RIGIFY_META = ["spine"] + [f"spine.{i:03d}" for i in range(1, 7)] + [
    "face", "nose", "nose.001", "lip.T.L", "lip.B.R", "jaw", "chin", "tongue", "teeth.T", "teeth.B",
    "eye.L", "eye.R", "ear.L", "ear.R", "brow.T.L", "forehead.L", "temple.R", "cheek.B.L"] + both(
    "breast.{S}", "pelvis.{S}", "shoulder.{S}", "upper_arm.{S}", "forearm.{S}", "hand.{S}", "palm.01.{S}",
    "thumb.01.{S}", "f_index.01.{S}", "f_index.02.{S}", "f_middle.01.{S}", "thigh.{S}", "shin.{S}",
    "foot.{S}", "toe.{S}", "heel.02.{S}")
RIGIFY_GENERATED = ["root", "torso", "hips", "chest", "neck", "head", "tweak_spine", "MCH-spine",
                    "MCH-torso.parent"] + [
    f"{p}spine{s}" for p in ("DEF-", "ORG-") for s in ["", *(f".{i:03d}" for i in range(1, 7))]] + both(
    "DEF-shoulder.{S}", "DEF-upper_arm.{S}", "DEF-upper_arm.{S}.001", "DEF-forearm.{S}", "DEF-forearm.{S}.001",
    "DEF-hand.{S}", "DEF-thigh.{S}", "DEF-thigh.{S}.001", "DEF-shin.{S}", "DEF-shin.{S}.001", "DEF-foot.{S}",
    "DEF-toe.{S}", "DEF-pelvis.{S}", "ORG-shoulder.{S}", "ORG-upper_arm.{S}", "ORG-hand.{S}", "ORG-thigh.{S}",
    "ORG-foot.{S}", "shoulder.{S}", "upper_arm_fk.{S}", "upper_arm_ik.{S}", "hand_ik.{S}", "thigh_fk.{S}",
    "thigh_ik.{S}", "foot_ik.{S}", "toe.{S}", "MCH-thigh_ik.{S}", "MCH-foot_roll.{S}")
UE4 = ["root", "pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head", "ik_foot_root",
       "ik_hand_root", "ik_hand_gun"] + both(
    "clavicle_{s}", "upperarm_{s}", "lowerarm_{s}", "hand_{s}", "index_01_{s}", "thumb_01_{s}",
    "lowerarm_twist_01_{s}", "upperarm_twist_01_{s}", "thigh_{s}", "calf_{s}", "calf_twist_01_{s}", "foot_{s}",
    "ball_{s}", "thigh_twist_01_{s}", "ik_foot_{s}", "ik_hand_{s}")
UE5 = ["root", "pelvis", "spine_01", "spine_02", "spine_03", "spine_04", "spine_05", "neck_01", "neck_02",
       "head", "ik_foot_root", "ik_hand_root", "ik_hand_gun", "interaction", "center_of_mass"] + both(
    "clavicle_{s}", "upperarm_{s}", "lowerarm_{s}", "hand_{s}", "index_metacarpal_{s}", "index_01_{s}",
    "upperarm_twist_01_{s}", "upperarm_twist_02_{s}", "lowerarm_twist_01_{s}", "lowerarm_twist_02_{s}",
    "thigh_{s}", "thigh_twist_01_{s}", "calf_{s}", "calf_twist_01_{s}", "foot_{s}", "ball_{s}",
    "ik_foot_{s}", "ik_hand_{s}", "weapon_{s}")

CASES = {
    "bandai": (BANDAI, expected("Hips", "Spine", "Chest", "Neck", "Head", "Shoulder_{S}", "UpperArm_{S}",
                                "LowerArm_{S}", "Hand_{S}", "UpperLeg_{S}", "LowerLeg_{S}", "Foot_{S}",
                                "Toes_{S}")),
    "cmu_motionbuilder": (CMU_MOTIONBUILDER, expected(
        "Hips", "Spine", "Spine1", "Neck1", "Head", "{Side}Shoulder", "{Side}Arm", "{Side}ForeArm",
        "{Side}Hand", "{Side}UpLeg", "{Side}Leg", "{Side}Foot", "{Side}ToeBase")),
    "cmu_daz": (CMU_DAZ, expected("hip", "abdomen", "chest", "neck", "head", "{s}Collar", "{s}Shldr",
                                  "{s}ForeArm", "{s}Hand", "{s}Thigh", "{s}Shin", "{s}Foot", "{s}Foot@end")),
    "asf": (ASF, expected("root", "upperback", "thorax", "lowerneck", "head", "{s}clavicle", "{s}humerus",
                          "{s}radius", "{s}wrist", "{s}femur", "{s}tibia", "{s}foot", "{s}toes")),
    "mixamo": (MIXAMO, {k: "mixamorig:" + v for k, v in expected(
        "Hips", "Spine", "Spine2", "Neck", "Head", "{Side}Shoulder", "{Side}Arm", "{Side}ForeArm", "{Side}Hand",
        "{Side}UpLeg", "{Side}Leg", "{Side}Foot", "{Side}ToeBase").items()}),
    "smpl": (SMPL, expected("pelvis", "spine1", "spine3", "neck", "head", "{side}_collar", "{side}_shoulder",
                            "{side}_elbow", "{side}_wrist", "{side}_hip", "{side}_knee", "{side}_ankle",
                            "{side}_foot")),
    "rigify_metarig": (RIGIFY_META, expected(
        "spine", "spine.001", "spine.003", "spine.004", "spine.006", "shoulder.{S}", "upper_arm.{S}",
        "forearm.{S}", "hand.{S}", "thigh.{S}", "shin.{S}", "foot.{S}", "toe.{S}")),
    "rigify_generated": (RIGIFY_GENERATED, expected(
        "DEF-spine", "DEF-spine.001", "DEF-spine.003", "DEF-spine.004", "DEF-spine.006", "DEF-shoulder.{S}",
        "DEF-upper_arm.{S}", "DEF-forearm.{S}", "DEF-hand.{S}", "DEF-thigh.{S}", "DEF-shin.{S}", "DEF-foot.{S}",
        "DEF-toe.{S}")),
    "ue4": (UE4, expected("pelvis", "spine_01", "spine_03", "neck_01", "head", "clavicle_{s}", "upperarm_{s}",
                          "lowerarm_{s}", "hand_{s}", "thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}")),
    "ue5": (UE5, expected("pelvis", "spine_01", "spine_05", "neck_01", "head", "clavicle_{s}", "upperarm_{s}",
                          "lowerarm_{s}", "hand_{s}", "thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}")),
}


@pytest.mark.parametrize("case", CASES)
def test_every_convention_maps_fully(case):
    bones, want = CASES[case]
    assert sorted(want) == sorted(JOINTS)
    assert map_joint_names(bones) == want
    # Bone order and case do not matter.
    assert map_joint_names(list(reversed(bones))) == want
    shouted = map_joint_names([b.upper() for b in bones])
    assert shouted == {k: v.upper().replace("@END", "@end") for k, v in want.items()}


def test_end_site_stands_in_for_a_missing_toe():
    mapping = map_joint_names(CMU_DAZ)
    assert split_end_site(mapping["l_toe"]) == ("lFoot", True)
    assert split_end_site(mapping["l_foot"]) == ("lFoot", False)


def test_other_namespaces_are_ignored():
    bones = ["Character1:" + b.split(":")[1] for b in MIXAMO]
    assert map_joint_names(bones)["l_hand"] == "Character1:LeftHand"


def test_overrides_replace_and_complete_the_automatic_mapping():
    rig = [b for b in UE5 if b != "ball_l"] + ["toe_l_custom"]
    with pytest.raises(MappingError) as err:
        map_joint_names(rig)
    assert err.value.missing == ["l_toe"]
    mapping = map_joint_names(rig, {"l_toe": "toe_l_custom", "chest": "spine_04", "neck": ""})
    assert mapping["l_toe"] == "toe_l_custom" and mapping["chest"] == "spine_04"
    assert mapping["neck"] == "neck_01"  # an empty override leaves the automatic choice
    assert map_joint_names(CMU_DAZ, {"l_toe": "lFoot@end"})["l_toe"] == "lFoot@end"


def test_bad_overrides_are_named():
    with pytest.raises(ValueError, match="Unknown canonical joint 'tail'"):
        map_joint_names(BANDAI, {"tail": "Hips"})
    with pytest.raises(ValueError, match="'NoSuchBone' mapped to l_hand does not exist"):
        map_joint_names(BANDAI, {"l_hand": "NoSuchBone"})


def test_quadruped_rig_names_every_missing_joint():
    dog = ["root", "pelvis", "spine_01", "spine_02", "chest", "neck_01", "neck_02", "head", "jaw",
           "tail_01", "tail_02", "tail_03"] + both(
        "ear_{s}", "front_upperleg_{s}", "front_lowerleg_{s}", "front_paw_{s}", "back_upperleg_{s}",
        "back_lowerleg_{s}", "back_paw_{s}")
    with pytest.raises(MappingError) as err:
        map_joint_names(dog)
    limbs = [f"{s}_{j}" for s in "lr" for j in ("collar", "upperarm", "forearm", "hand", "thigh", "shin",
                                                    "foot", "toe")]
    assert sorted(err.value.missing) == sorted(limbs)
    assert err.value.convention == "unreal" and err.value.found == 5
    message = str(err.value)
    assert message.startswith("Could not map 16 of 21 canonical joints (l_collar, l_upperarm,")
    assert all(j in message for j in limbs)


def test_partial_mapping_when_only_some_joints_are_required():
    arms_only = ["Hips", "Spine", "Chest", "Neck", "Head"] + both("Shoulder_{S}", "UpperArm_{S}",
                                                                    "LowerArm_{S}", "Hand_{S}")
    required = ("pelvis", "spine", "chest", "neck", "head", "l_hand", "r_hand")
    assert map_joint_names(arms_only, required=required)["l_hand"] == "Hand_L"


def test_skeleton_tables_agree():
    assert len(PARENTS) == len(JOINTS) and all(p < i for i, p in enumerate(PARENTS))
    assert all(MIRROR[MIRROR[i]] == i for i in range(len(JOINTS)))
    assert JOINTS[MIRROR[JOINTS.index("l_hand")]] == "r_hand"
    assert label_key("  Walk Turn_Left ") == "walk-turn-left"
