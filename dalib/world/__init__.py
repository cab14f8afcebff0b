"""The renderer behind :mod:`dalib.synth`, one module a stage (notebooks use ``dalib.synth``).

- :mod:`~dalib.world.geometry`: the camera and exact ray casting of planes, boxes, spheres and
  cylinders;
- :mod:`~dalib.world.textures`: procedural patterns, bundled photographs and the materials
  that place them on surfaces;
- :mod:`~dalib.world.props`: the semantic classes and object recipes (crates, barrels, trees,
  cars...);
- :mod:`~dalib.world.scenes`: a domain's spec and the random world (layout, objects, light,
  sky, camera pose) built from it;
- :mod:`~dalib.world.shading`: Lambertian light, shadows, sky and fog in NumPy;
- :mod:`~dalib.world.raycast_torch` and :mod:`~dalib.world.render_torch`: the same ray caster
  and shading as batched torch code, for a GPU.

Arrows point down this list (``scenes`` uses ``props``, ``geometry``, ``shading`` and
``textures``; nothing here imports training code).
"""
