"""The profile-picture pipeline, in pure Pillow (no Flask, no storage).

bytes in → a progressive JPEG fitted within 500×500 with no metadata, or an
:class:`ImageError`. Only JPEG, PNG, WebP or GIF, judged by content; pixel floods are
refused from the header, before a single pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
MAX_SIDE = 500
MAX_PIXELS = 40_000_000  # far under Pillow's own bomb limit (≈89 MP)
JPEG_QUALITY = 85
# A small file can decode huge (a 34-byte lossless WebP of 6300×6300 is 150 MB of pixels):
# the budget is what decoding and shrinking will allocate at their peak (decode_cost),
# judged from the header, so that a tiny file cannot grow a worker by hundreds of MB.
MAX_DECODE_BYTES = 80 * 2**20
# Bytes per pixel in Pillow's memory: one band of 8 or 16 bits, or 32-bit values; every
# other mode (RGB, RGBA, LA, CMYK, YCbCr …) takes 4 bytes a pixel, RGB included.
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


class ImageError(ValueError):
    """The bytes cannot become a profile picture."""


class UnsupportedImage(ImageError):
    """Not a JPEG, PNG, WebP or GIF, or a broken one."""


class ImageTooLarge(ImageError):
    """More pixels than the pipeline will decode."""


def to_profile_jpeg(data: bytes, *, max_side: int = MAX_SIDE) -> bytes:
    with warnings.catch_warnings():
        # Pillow only warns below twice its limit; a bomb is an error here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # By content, and only as one of ACCEPTED_FORMATS: never by file name or header.
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as im:
                # Still unloaded: size and mode come from the header, nothing is decoded yet.
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ImageTooLarge(
                        f"The image is {width}×{height} pixels: at most "
                        f"{MAX_PIXELS // 1_000_000} megapixels are accepted."
                    )
                cost = decode_cost(im, max_side)
                if cost > MAX_DECODE_BYTES:
                    raise ImageTooLarge(
                        f"The image is {width}×{height} pixels of {im.mode}: it takes "
                        f"{cost / 2**20:.0f} MB to be decoded, at most "
                        f"{MAX_DECODE_BYTES // 2**20} MB are accepted."
                    )
                # Shrink while unloaded, before any convert: for a JPEG, thumbnail puts the
                # decoder in draft mode, which decodes at 1/2, 1/4 or 1/8 scale, and
                # reducing_gap=1 lets it scale by up to 1/8 straight to the target, so a
                # large photo is never decoded at full size. Only the first frame of an
                # animation is read. Then orient: the box is square, so fitting before
                # rotating gives the same size.
                im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=1.0)
                oriented = ImageOps.exif_transpose(im)
                return _encode(_flatten(oriented))
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's own check at open, for canvases far beyond our limit.
            raise ImageTooLarge(
                f"The image has too many pixels: at most {MAX_PIXELS // 1_000_000} "
                "megapixels are accepted."
            ) from None
        except UnidentifiedImageError:
            raise UnsupportedImage("Not a JPEG, PNG, WebP or GIF image.") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            # Truncated or corrupt data behind a valid header.
            raise UnsupportedImage("The image data is damaged or incomplete.") from exc


def decoded_bytes(im: Image.Image, max_side: int = MAX_SIDE) -> int:
    """The pixels of ``im`` once decoded (still unloaded: size and mode come from the
    header): width × height × bands × bytes per band, as Pillow stores them. A JPEG is
    decoded at the reduced scale thumbnail() asks its draft mode for."""
    width, height = im.size
    if im.format == "JPEG":
        width, height = _jpeg_draft_size(im.size, _fitted(im.size, max_side))
    return width * height * _PIXEL_BYTES.get(im.mode, 4)


def _jpeg_draft_size(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    # As Pillow's JpegImageFile.draft picks it: the largest of 1/8, 1/4, 1/2, 1 that keeps
    # the image at least the target size.
    ratio = min(size[0] // target[0], size[1] // target[1])
    scale = next(s for s in (8, 4, 2, 1) if ratio >= s or s == 1)
    return -(-size[0] // scale), -(-size[1] // scale)


def decode_cost(im: Image.Image, max_side: int = MAX_SIDE) -> int:
    """The peak bytes decoding and shrinking ``im`` allocate: its decoded pixels, times
    what its format and mode need on top."""
    pixels = decoded_bytes(im, max_side)
    if im.format == "WEBP":
        # libwebp's own buffer, the copy Pillow is handed, the image, and the resampling.
        return 4 * pixels
    # Transparency or 16-bit samples: resampling works on a premultiplied (or widened)
    # full-size copy.
    if im.mode in ("RGBA", "LA", "PA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return 2 * pixels
    if "transparency" in im.info:
        return 2 * pixels
    return pixels


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _flatten(im: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _encode(im: Image.Image) -> bytes:
    # A new image carries no info dict: nothing of the upload's metadata can follow.
    clean = Image.new("RGB", im.size)
    clean.paste(im)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()
