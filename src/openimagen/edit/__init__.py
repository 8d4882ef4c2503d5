"""Editing user images with the cascade: image-to-image (SDEdit), inpainting and outpainting, and
super-resolution of a user's image, and restoration of degraded images built from them."""
from openimagen.edit.img2img import img2img  # noqa: F401
from openimagen.edit.inpaint import inpaint, outpaint  # noqa: F401
from openimagen.edit.restore import restore  # noqa: F401
from openimagen.edit.upscale import upscale  # noqa: F401
