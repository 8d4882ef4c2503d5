"""The default model's GPU training recipe: everything a short, offline GPU window needs (issue 11).

Two steps, one per machine (docs/TRAINING.md):

* :mod:`.bundle`, here on the CPU: ``python -m openimagen.gpu bundle gpu-bundle`` (``make gpu-bundle``) writes an
  ignored folder under 64 MiB with the emoji images, the recipe for the procedural scenes, a packed text
  encoder (:mod:`.encoder_pack`) that embeds exactly the training captions, the run configs and the wheels
  the GPU machine lacks.
* :mod:`.run`, there: ``python -m openimagen.gpu run gpu-bundle --out DIR`` builds the data, computes the
  embedding cache, trains the base and super-resolution stages side by side in bf16 until a wall-clock
  budget, and writes the fp16 EMA cascade plus a JSON log of images seen and losses.

Both have a ``--tiny`` mode that runs the same code in seconds on a CPU; the test suite runs it.
"""
