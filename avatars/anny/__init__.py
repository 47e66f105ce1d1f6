"""Avatars on the Anny parametric human body model (NAVER, Apache-2.0; MakeHuman data, CC0).

    from avatars.anny import build_avatar
    avatar = build_avatar(attributes)            # a RiggedMesh: bust + accessories, skeleton, 52 ARKit morphs
    write_rigged_glb(avatar, "model.glb")        # avatars.anny.gltf

Anny is an optional dependency (`pip install 'dream3d[avatar]'`); `avatars.anny.model.require_anny`
raises one clear line with the install command when it is missing.
"""
