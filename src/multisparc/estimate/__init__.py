"""From a photo to what alignment needs: metric depth from a monocular network, normals fitted to it and
intrinsics from the photo's EXIF (`multisparc estimate`).

- `intrinsics`: K (3, 3) pixels of a photo, from its EXIF focal length or a stated field of view.
- `depth_model`: a pretrained metric depth network (Depth Anything V2 through `transformers`, the optional
  extra `pip install 'multisparc[estimate]'`), loaded from the model hub or a local folder.
- `photo`: one photo made into a scene bundle (image, camera, depth, normals, detections when given).

Nothing here imports `transformers` at module level: the rest of the package never needs it.
"""
