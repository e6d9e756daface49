#!/usr/bin/env python3
"""PyTorch reference for clip-surgery-web: builds the test fixtures and golden outputs.

Run from the repository root (CPU only, takes well under a minute):

    /work/refvenv/bin/python tests/reference/make_fixtures.py

What it writes (see tests/fixtures/README.md for the full description):

* ``tests/fixtures/tiny-clip/{config.json,model.safetensors}``: a tiny, randomly
  initialised ViT-B/16-shaped CLIP in Hugging Face layout, stored as F16.
* ``tests/fixtures/tiny-clip-openai.safetensors``: the same weights under the
  OpenAI / open_clip state-dict names.
* ``tests/fixtures/images/*``: test images (PNG from scikit-image, one EXIF-rotated JPEG).
* ``tests/fixtures/goldens/goldens.{safetensors,json}``: the reference outputs.

The CLIP Surgery computations follow the official implementation
(https://github.com/xmed-lab/CLIP_Surgery: ``clip/clip_surgery_model.py``,
``clip/clip.py``, ``demo.py``; Li et al. 2023, arXiv:2304.05653) operation by
operation, re-expressed on top of the ``transformers.CLIPModel`` modules. Where
this port deliberately departs from the official code the comment says so
("BUG FIX" or "EXTENSION").

Everything is float32 on the CPU with fixed seeds. A final self-check re-runs the
whole pipeline in float64 and reports how far each golden family moves; that is a
proxy for how much rounding noise an independent f32 implementation (the Rust
port) should expect against the 1e-4 tolerance. The discrete outputs (prompt
points) carry a decision margin in goldens.json; the self-check asserts that only
point sets with a small margin can change under rounding.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from safetensors.torch import load_file, save_file
from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize, ToTensor
from transformers import CLIPConfig, CLIPModel

torch.set_grad_enabled(False)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODEL_DIR = FIXTURES / "tiny-clip"
OPENAI_WEIGHTS = FIXTURES / "tiny-clip-openai.safetensors"
IMAGE_DIR = FIXTURES / "images"
GOLDEN_DIR = FIXTURES / "goldens"

# ---------------------------------------------------------------------------
# Fixture definition
# ---------------------------------------------------------------------------

SEED = 0
PATCH = 16
# The official code turns the last 6 residual blocks of the ViT into dual-path
# blocks (``for i in range(1, 7): resblocks[-i]``), whatever the depth.
SURGERY_BLOCKS = 6

LABELS = ["cat", "dog", "person", "coffee cup", "sky"]
SINGLE = "cat"
COMBINED = "cat+dog"
# The last prompt is longer than 77 tokens, so it exercises truncation (EOT kept
# as the last token); its head also exercises the tokenizer's text cleaning
# (html.unescape, whitespace collapsing, lower-casing, a non-ASCII character).
PROMPTS = [
    "a photo of a cat.",
    "",
    "a diagram",
    "Café  &amp; Rock'n'Roll: " + " ".join(["a very"] * 40) + " long caption that will be truncated",
]
# Segmentation goldens: case -> kinds. "cosine" is the author's protocol (surgery
# tokens . label ensembles, no feature surgery); "feature" uses feature surgery's
# scores instead; "raw" raw CLIP's tokens; "background" the cosine protocol with the
# last label as a background word and a floor on the winner's probability (about the
# median winner's on this model, whose logit scale is 1/0.07).
SEG_CASES = {
    "astronaut.224": ["cosine"],
    "astronaut.224x320": ["cosine"],
    "coffee.512": ["cosine"],
    "chelsea.224": ["feature", "raw", "background"],
}
# The sliding-window protocol of the later training-free papers (mmseg's slide
# inference): short side resized to SLIDE[0] (aspect kept), 224 windows every 112
# pixels, window logits upsampled to the window and averaged where windows overlap,
# then resized to the image. Golden "seg.{image}.slide" (cosine scores).
SLIDE = (336, 224, 112)
SLIDE_IMAGES = ["chelsea"]
SEG_BACKGROUND_WORDS = 1
SEG_THRESHOLD = 0.3
# The multimodal view (paper §5.6): a sentence's tokens, SOT to EOT, each the text
# tower's final state (ln_final) at that token, projected and L2-normalised, as the
# class set of feature surgery against the surgery tokens; a score per token (cosine
# with the CLS feature). Goldens "tokens.{case}.similarity" ([N, T], patches only)
# and "tokens.{case}.score" ([T]) for these cases, raw CLIP's cosines for the raw ones.
TOKENS_TEXT = "A photo of an astronaut with a flag, café!"
TOKEN_CASES = ["astronaut.224", "astronaut.224x320"]
# The attention view (Fig. 1): case -> (block, query token (0 = class token, 1 + row·gw + col
# for a patch)), golden "attention.{case}" = [2, 1+N]: q-k row, v-v row, head-averaged.
# The redundancy view (Fig. 2): golden "redundancy.{case}.{raw|surgery}" = [N, 2], per patch
# the cosine with the "" ensemble and Eq. 9's subtracted term for the label set.
REDUNDANCY_CASES = ["astronaut.224", "coffee.512"]
ATTENTION_CASES = {"astronaut.224": (7, 1 + 6 * 14 + 4), "astronaut.224x320": (3, 1 + 2 * 20 + 17)}
MAP_SIZE = (97, 131)  # (H, W) of the golden similarity maps; deliberately odd and non-square
CONTEXT_LENGTH = 77

# CLIP's pixel statistics, as in the official ``_transform`` / demo.py.
PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)

# Image name -> file under images/ (the PNGs are scikit-image samples; see write_images).
IMAGES = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "chelsea_exif": "chelsea-exif6.jpg",
}

# (image, (H, W)) pairs for which goldens are produced.
CASES = (
    [(img, (s, s)) for img in ("astronaut", "coffee", "chelsea") for s in (224, 512)]
    + [("astronaut", (224, 320)), ("chelsea_exif", (224, 224))]
)

# The 85 ImageNet prompt templates of the official ``encode_text_with_prompt_ensemble``
# (clip/clip.py), same order. This is data, copied as is.
PROMPT_TEMPLATES = [
    'a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.', 'a photo of the hard to see {}.',
    'a low resolution photo of the {}.', 'a rendering of a {}.', 'graffiti of a {}.', 'a bad photo of the {}.',
    'a cropped photo of the {}.', 'a tattoo of a {}.', 'the embroidered {}.', 'a photo of a hard to see {}.',
    'a bright photo of a {}.', 'a photo of a clean {}.', 'a photo of a dirty {}.', 'a dark photo of the {}.',
    'a drawing of a {}.', 'a photo of my {}.', 'the plastic {}.', 'a photo of the cool {}.',
    'a close-up photo of a {}.', 'a black and white photo of the {}.', 'a painting of the {}.',
    'a painting of a {}.', 'a pixelated photo of the {}.', 'a sculpture of the {}.', 'a bright photo of the {}.',
    'a cropped photo of a {}.', 'a plastic {}.', 'a photo of the dirty {}.', 'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.', 'a photo of the {}.', 'a good photo of the {}.', 'a rendering of the {}.',
    'a {} in a video game.', 'a photo of one {}.', 'a doodle of a {}.', 'a close-up photo of the {}.',
    'a photo of a {}.', 'the origami {}.', 'the {} in a video game.', 'a sketch of a {}.', 'a doodle of the {}.',
    'a origami {}.', 'a low resolution photo of a {}.', 'the toy {}.', 'a rendition of the {}.',
    'a photo of the clean {}.', 'a photo of a large {}.', 'a rendition of a {}.', 'a photo of a nice {}.',
    'a photo of a weird {}.', 'a blurry photo of a {}.', 'a cartoon {}.', 'art of a {}.', 'a sketch of the {}.',
    'a embroidered {}.', 'a pixelated photo of a {}.', 'itap of the {}.', 'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.', 'a plushie {}.', 'a photo of the nice {}.', 'a photo of the small {}.',
    'a photo of the weird {}.', 'the cartoon {}.', 'art of the {}.', 'a drawing of the {}.',
    'a photo of the large {}.', 'a black and white photo of a {}.', 'the plushie {}.', 'a dark photo of a {}.',
    'itap of a {}.', 'graffiti of the {}.', 'a toy {}.', 'itap of my {}.', 'a photo of a cool {}.',
    'a photo of a small {}.', 'a tattoo of the {}.', 'there is a {} in the scene.',
    'there is the {} in the scene.', 'this is a {} in the scene.', 'this is the {} in the scene.',
    'this is one {} in the scene.',
]
assert len(PROMPT_TEMPLATES) == 85


def size_tag(size: tuple[int, int]) -> str:
    """Golden-name fragment for an input size: ``"224"`` when square, else ``"224x320"`` (H x W)."""
    h, w = size
    return str(h) if h == w else f"{h}x{w}"


# ---------------------------------------------------------------------------
# Tiny model
# ---------------------------------------------------------------------------

def tiny_config() -> CLIPConfig:
    """ViT-B/16-shaped CLIP, shrunk: width 128, 2 heads, 8 vision / 4 text layers.

    The vision tower keeps patch 16 and a 224 input (so the 14x14 position grid and
    the 512 -> 32x32 interpolation are exercised as with the real ViT-B/16), and has
    more layers than the 6 that surgery rewrites, so it has both block kinds.
    """
    # projection_dim is repeated in the sub-configs only so config.json is not
    # misleading (CLIPModel reads the top-level value; the sub-config default is 512).
    common = dict(hidden_size=128, intermediate_size=512, num_attention_heads=2,
                  hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64)
    text = dict(common, num_hidden_layers=4, max_position_embeddings=CONTEXT_LENGTH, vocab_size=49408,
                bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    vision = dict(common, num_hidden_layers=8, image_size=224, patch_size=PATCH, num_channels=3)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=64, attn_implementation="eager")
    config.architectures = ["CLIPModel"]
    return config


def build_tiny_model() -> CLIPModel:
    """Random CLIP whose every parameter matters and is exactly representable in f16.

    The default init leaves LayerNorms at (1, 0) and biases at 0, so a Rust loader
    that swapped or dropped those tensors would still pass; perturbing them makes
    every key mapping observable. Rounding through f16 makes the stored F16 file
    and the f32 model used for the goldens hold identical values.
    """
    torch.manual_seed(SEED)
    model = CLIPModel(tiny_config()).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
            module.bias.copy_(0.05 * torch.randn_like(module.bias))
    for name, param in model.named_parameters():
        is_attn = any(f"self_attn.{p}_proj.bias" in name for p in ("q", "k", "v", "out"))
        is_mlp = ".mlp.fc" in name and name.endswith(".bias")
        if is_attn or is_mlp:
            param.copy_(0.02 * torch.randn_like(param))
    model.logit_scale.fill_(math.log(1 / 0.07))
    for param in model.parameters():
        param.data = param.data.half().float()
    return model


def hf_state_dict(model: CLIPModel) -> dict[str, torch.Tensor]:
    """Parameters under their HF names (no ``position_ids`` buffers), as contiguous F16."""
    return {name: p.detach().half().contiguous() for name, p in model.named_parameters()}


def hf_to_openai(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an HF CLIP state dict to the OpenAI / open_clip layout.

    Differences besides names: q/k/v are fused into ``in_proj_{weight,bias}``
    (rows ordered q, k, v, as nn.MultiheadAttention expects), and the two
    projections are stored transposed ([width, embed], used as ``x @ proj``).
    """
    out: dict[str, torch.Tensor] = {}

    def tower(hf: str, oa: str, layers: int) -> None:
        for i in range(layers):
            src, dst = f"{hf}.encoder.layers.{i}", f"{oa}.resblocks.{i}"
            attn = f"{src}.self_attn"
            out[f"{dst}.attn.in_proj_weight"] = torch.cat([sd[f"{attn}.{p}_proj.weight"] for p in "qkv"], 0)
            out[f"{dst}.attn.in_proj_bias"] = torch.cat([sd[f"{attn}.{p}_proj.bias"] for p in "qkv"], 0)
            for kind in ("weight", "bias"):
                out[f"{dst}.attn.out_proj.{kind}"] = sd[f"{attn}.out_proj.{kind}"]
                out[f"{dst}.ln_1.{kind}"] = sd[f"{src}.layer_norm1.{kind}"]
                out[f"{dst}.ln_2.{kind}"] = sd[f"{src}.layer_norm2.{kind}"]
                out[f"{dst}.mlp.c_fc.{kind}"] = sd[f"{src}.mlp.fc1.{kind}"]
                out[f"{dst}.mlp.c_proj.{kind}"] = sd[f"{src}.mlp.fc2.{kind}"]

    def layer_norm(src: str, dst: str) -> None:
        for kind in ("weight", "bias"):
            out[f"{dst}.{kind}"] = sd[f"{src}.{kind}"]

    v = "vision_model"
    out["visual.conv1.weight"] = sd[f"{v}.embeddings.patch_embedding.weight"]
    out["visual.class_embedding"] = sd[f"{v}.embeddings.class_embedding"]
    out["visual.positional_embedding"] = sd[f"{v}.embeddings.position_embedding.weight"]
    layer_norm(f"{v}.pre_layrnorm", "visual.ln_pre")
    tower(v, "visual.transformer", count_layers(sd, v))
    layer_norm(f"{v}.post_layernorm", "visual.ln_post")
    out["visual.proj"] = sd["visual_projection.weight"].t()

    t = "text_model"
    out["token_embedding.weight"] = sd[f"{t}.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd[f"{t}.embeddings.position_embedding.weight"]
    tower(t, "transformer", count_layers(sd, t))
    layer_norm(f"{t}.final_layer_norm", "ln_final")
    out["text_projection"] = sd["text_projection.weight"].t()
    out["logit_scale"] = sd["logit_scale"]

    out = {k: v.contiguous() for k, v in out.items()}
    mapped = sum(v.numel() for v in out.values())
    assert mapped == sum(v.numel() for v in sd.values()), "every HF parameter must be mapped exactly once"
    return out


def count_layers(sd: dict[str, torch.Tensor], tower: str) -> int:
    prefix = f"{tower}.encoder.layers."
    return 1 + max(int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix))


def open_clip_twin(config: CLIPConfig, openai_sd: dict[str, torch.Tensor]) -> torch.nn.Module:
    """An ``open_clip.model.CLIP`` with the tiny architecture, loaded strictly from the OpenAI-named file."""
    vc, tc = config.vision_config, config.text_config
    model = open_clip.model.CLIP(
        embed_dim=config.projection_dim,
        vision_cfg=open_clip.model.CLIPVisionCfg(
            layers=vc.num_hidden_layers, width=vc.hidden_size,
            head_width=vc.hidden_size // vc.num_attention_heads,
            mlp_ratio=vc.intermediate_size / vc.hidden_size, patch_size=vc.patch_size, image_size=vc.image_size),
        text_cfg=open_clip.model.CLIPTextCfg(
            context_length=tc.max_position_embeddings, vocab_size=tc.vocab_size, width=tc.hidden_size,
            heads=tc.num_attention_heads, layers=tc.num_hidden_layers,
            mlp_ratio=tc.intermediate_size / tc.hidden_size),
        quick_gelu=True,
    ).eval()
    model.load_state_dict({k: v.float() for k, v in openai_sd.items()}, strict=True)
    return model


# ---------------------------------------------------------------------------
# Images and preprocessing
# ---------------------------------------------------------------------------

def write_images() -> None:
    """Write the test images; all content comes from scikit-image's bundled samples."""
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(IMAGE_DIR / f"{name}.png")

    # A 224x224 copy, made exactly as the 224 preprocessing resizes it, so that a
    # 224 run on this file is an identity resize (isolates the model from resampling).
    with Image.open(IMAGE_DIR / "astronaut.png") as im:
        im.convert("RGB").resize((224, 224), Image.BICUBIC).save(IMAGE_DIR / "astronaut-224.png")

    # EXIF orientation 6 means "rotate 90 degrees clockwise to display", so the
    # stored pixels are the upright image rotated 90 degrees counter-clockwise.
    # 4:4:4 chroma (subsampling=0) avoids chroma-upsampling differences between
    # JPEG decoders, leaving only their IDCT rounding differences.
    with Image.open(IMAGE_DIR / "chelsea.png") as im:
        stored = im.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(IMAGE_DIR / IMAGES["chelsea_exif"], quality=95, subsampling=0, exif=exif.tobytes())


def load_image(name: str) -> Image.Image:
    """Decoded RGB image, with any EXIF orientation applied (so H, W are as displayed)."""
    with Image.open(IMAGE_DIR / IMAGES[name]) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def preprocess(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, torch.Tensor]:
    """The official preprocessing (demo.py): squash-resize (no crop), ToTensor, Normalize.

    Returns the resized uint8 image [H, W, 3] (what the Rust side normalises
    itself) and the normalised pixel batch [1, 3, H, W].
    """
    resized = Resize(size, interpolation=InterpolationMode.BICUBIC)(image)
    pixels = Compose([ToTensor(), Normalize(PIXEL_MEAN, PIXEL_STD)])(resized)
    return np.asarray(resized, dtype=np.uint8).copy(), pixels.unsqueeze(0)


# ---------------------------------------------------------------------------
# Text side
# ---------------------------------------------------------------------------

def tokenize(texts: list[str]) -> torch.Tensor:
    """open_clip's CLIP BPE tokenizer: ftfy + html.unescape + lower-case, SOT/EOT, zero padding.

    Unlike the official ``clip.tokenize`` (which raises on overlong input unless
    ``truncate=True``), this truncates to 77 tokens and keeps EOT as the last one.
    """
    return open_clip.tokenize(texts, context_length=CONTEXT_LENGTH)


def text_features(model: CLIPModel, ids: torch.Tensor) -> torch.Tensor:
    """Unnormalised projected text features (EOT token after ln_final, times text_projection)."""
    out = model.get_text_features(input_ids=ids)
    # transformers < 5 returns the tensor; >= 5 returns an output object.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def token_features(model: CLIPModel, text: str) -> torch.Tensor:
    """Every token's feature, SOT to the first EOT: ``last_hidden_state`` (ln_final is
    applied to all tokens; under the causal mask the padding after EOT changes nothing
    before it) times ``text_projection``, L2-normalised. [T, E]."""
    ids = tokenize([text])
    eot = int(ids[0].argmax())
    states = model.text_model(input_ids=ids).last_hidden_state[0, : eot + 1]
    return l2_normalize(model.text_projection(states))


def token_texts(text: str) -> list[str]:
    """How each token of ``text`` reads: the BPE string, byte symbols decoded, ``</w>``
    dropped; SOT and EOT under OpenAI's names."""
    bpe = open_clip.tokenizer._tokenizer
    ids = tokenize([text])[0]
    out = []
    for i in ids[: int(ids.argmax()) + 1].tolist():
        if i == bpe.sot_token_id:
            out.append("<|startoftext|>")
        elif i == bpe.eot_token_id:
            out.append("<|endoftext|>")
        else:
            symbols = bpe.decoder[i].replace("</w>", "")
            out.append(bytearray(bpe.byte_decoder[c] for c in symbols).decode("utf-8", errors="replace"))
    return out


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def prompt_ensemble(model: CLIPModel, texts: list[str]) -> torch.Tensor:
    """Official ``encode_text_with_prompt_ensemble``: per text, encode all 85 templated
    prompts, L2-normalise each, average, L2-normalise again. Returns [len(texts), E]."""
    rows = []
    for text in texts:
        feats = l2_normalize(text_features(model, tokenize([t.format(text) for t in PROMPT_TEMPLATES])))
        rows.append(l2_normalize(feats.mean(dim=0)))
    return torch.stack(rows)


# ---------------------------------------------------------------------------
# Image side: the ViT with (and without) architecture surgery
# ---------------------------------------------------------------------------

class SurgeryViT:
    """Official CS-ViT image encoder, written out on top of an HF ``CLIPModel``'s modules."""

    def __init__(self, model: CLIPModel):
        self.vision = model.vision_model
        self.projection = model.visual_projection
        cfg = model.config.vision_config
        self.heads = cfg.num_attention_heads
        self.scale = (cfg.hidden_size // cfg.num_attention_heads) ** -0.5
        self.layers = list(self.vision.encoder.layers)
        # Blocks before this index are untouched; the rest are dual-path.
        self.first_dual = max(len(self.layers) - SURGERY_BLOCKS, 0)

    # -- embeddings ---------------------------------------------------------

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """[1 + gh*gw, W] position table for a (gh, gw) patch grid.

        As in the official VisionTransformer.forward: the class position is kept and
        the patch positions are resized with *bilinear*, align_corners=False
        interpolation (HF's own ``interpolate_pos_encoding`` would use bicubic).
        EXTENSION: the official code only handles square grids; here gh != gw is
        allowed. It also overwrites its position table in place on the first
        off-size call (so later calls at other sizes interpolate an already
        interpolated table); this port always starts from the trained table.
        """
        table = self.vision.embeddings.position_embedding.weight
        cls_pos, patch_pos = table[:1], table[1:]
        side = math.isqrt(patch_pos.shape[0])
        if grid != (side, side):
            width = table.shape[1]
            square = patch_pos.reshape(1, side, side, width).permute(0, 3, 1, 2)
            resized = F.interpolate(square, size=grid, mode="bilinear", align_corners=False)
            patch_pos = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], width)
        return torch.cat([cls_pos, patch_pos], dim=0)

    def embed(self, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patchify, prepend the class token, add positions, ln_pre. Returns ([B, 1+N, W], grid)."""
        emb = self.vision.embeddings
        patches = emb.patch_embedding(pixels)  # [B, W, gh, gw]
        grid = tuple(patches.shape[-2:])
        tokens = patches.flatten(2).transpose(1, 2)  # [B, gh*gw, W], row-major over the grid
        cls = emb.class_embedding.reshape(1, 1, -1).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.position_embedding(grid)
        return self.vision.pre_layrnorm(x), grid

    # -- blocks --------------------------------------------------------------

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, W] -> [B, heads, N, d]
        b, n, w = x.shape
        return x.reshape(b, n, self.heads, w // self.heads).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(scale * q k^T) v, heads merged back: [B, N, W]."""
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = weights @ v
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)

    def standard_block(self, layer, x: torch.Tensor) -> torch.Tensor:
        """Pre-LN CLIP block: x + attn(ln_1 x), then + mlp(ln_2 x)."""
        attn = layer.self_attn
        h = layer.layer_norm1(x)
        q, k, v = (self._split(p(h)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        x = x + attn.out_proj(self._attend(q, k, v))
        return x + layer.mlp(layer.layer_norm2(x))

    def dual_block(self, layer, x: torch.Tensor, x_ori: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dual-path block of architecture surgery (official ResidualAttentionBlock + Attention).

        Both attentions read q, k, v from ln_1 of the *original* path. The original
        path is a standard block (q-k attention, then FFN). The new path adds v-v
        self-attention (q and k replaced by v, same scale, same out_proj incl. bias)
        to its own residual stream and skips the FFN.
        """
        attn = layer.self_attn
        h = layer.layer_norm1(x_ori)
        q, k, v = (self._split(p(h)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        x_ori_res = attn.out_proj(self._attend(q, k, v))
        x_res = attn.out_proj(self._attend(v, v, v))
        x_ori = x_ori + x_ori_res
        x_ori = x_ori + layer.mlp(layer.layer_norm2(x_ori))
        return x + x_res, x_ori

    def attention_rows(self, pixels: torch.Tensor, block: int, query: int) -> torch.Tensor:
        """Block ``block``'s attention of token ``query`` (0 = class token), averaged over
        heads: [2, 1+N], the q-k row (the original path's) then the v-v row (the surgery
        path's), both from ln_1 of the original path — the only input either attention reads
        (the surgery path's own stream never feeds an attention), so the original path here
        is raw CLIP's."""
        x, _ = self.embed(pixels)
        for layer in self.layers[:block]:
            x = self.standard_block(layer, x)
        attn = self.layers[block].self_attn
        h = self.layers[block].layer_norm1(x)
        q, k, v = (self._split(p(h)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        rows = []
        for a, b in ((q, k), (v, v)):
            weights = ((a[:, :, query : query + 1] @ b.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            rows.append(weights[0, :, 0].mean(dim=0))
        return torch.stack(rows)

    # -- encoders ------------------------------------------------------------

    def encode_tokens(self, pixels: torch.Tensor, surgery: bool) -> tuple[torch.Tensor, tuple[int, int]]:
        """Final-block tokens before ln_post: [B, 1+N, W]."""
        x, grid = self.embed(pixels)
        if not surgery:
            for layer in self.layers:
                x = self.standard_block(layer, x)
            return x, grid
        for layer in self.layers[: self.first_dual]:
            x = self.standard_block(layer, x)
        x_ori = x  # the dual path starts with both streams equal to the block input
        for layer in self.layers[self.first_dual:]:
            x, x_ori = self.dual_block(layer, x, x_ori)
        # CLS comes from the original path, patch tokens from the new path.
        x = torch.cat([x_ori[:, :1], x[:, 1:]], dim=1)
        return x, grid

    def features(self, pixels: torch.Tensor, surgery: bool) -> tuple[torch.Tensor, tuple[int, int]]:
        """L2-normalised projected features of every token (ln_post applies to all tokens,
        as in the official code, not just CLS). Batch of one: returns ([1+N, E], grid)."""
        x, grid = self.encode_tokens(pixels, surgery)
        x = self.projection(self.vision.post_layernorm(x))
        return l2_normalize(x)[0], grid


# ---------------------------------------------------------------------------
# Feature surgery, similarity maps and points
# ---------------------------------------------------------------------------

def feature_surgery_labels(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Official ``clip_feature_surgery`` without redundant features (paper: "feature surgery").

    image [1+N, E] normalised tokens (row 0 is CLS), text [K, E]. Class weights
    w = softmax(2 * cls . t) / mean(...) damp classes the image obviously contains;
    the redundant part is the (weighted) mean over classes of the element-wise
    products, removed before summing over channels. Returns [1+N, K].
    """
    prob = ((image[:1] @ text.t()) * 2).softmax(dim=-1)  # [1, K]
    w = prob / prob.mean(dim=-1, keepdim=True)
    feats = image[:, None, :] * text[None, :, :]  # [1+N, K, E]
    feats = feats * w.reshape(1, -1, 1)
    feats = feats - feats.mean(dim=1, keepdim=True)
    return feats.sum(dim=-1)


def feature_surgery_single(image: torch.Tensor, text: torch.Tensor, redundant: torch.Tensor) -> torch.Tensor:
    """``clip_feature_surgery`` with redundant features: image . (t - r), r = ensemble of "". [1+N, K]"""
    return image @ (text - redundant).t()


def minmax_columns(sm: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each column over rows (patches).

    BUG FIX: the official code divides by (max - min) unguarded, so a constant
    column becomes NaN; here it becomes all zeros.
    """
    lo = sm.min(dim=0, keepdim=True).values
    span = sm.max(dim=0, keepdim=True).values - lo
    valid = span > 0
    return torch.where(valid, (sm - lo) / torch.where(valid, span, torch.ones_like(span)), torch.zeros_like(sm))


def similarity_map(sm: torch.Tensor, grid: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """Official ``get_similarity_map``: per-class min-max over patches, patch grid
    (row-major), bilinear (align_corners=False) upsampling. sm [N, K] -> [K, H, W].
    EXTENSION: non-square grids."""
    norm = minmax_columns(sm)
    maps = norm.t().reshape(1, -1, grid[0], grid[1])
    return F.interpolate(maps, size=out_size, mode="bilinear", align_corners=False)[0]


def _point_scores(sm: torch.Tensor, grid: tuple[int, int], down: int) -> tuple[torch.Tensor | None, int]:
    """Cell scores of the prompt-point search: the patch map downsampled by ``down``
    (bilinear, align_corners=False) then min-max normalised; None if it is constant.
    Also returns the downsampled grid width."""
    gh, gw = grid
    dh, dw = max(gh // down, 1), max(gw // down, 1)
    s = F.interpolate(sm.reshape(1, 1, gh, gw), size=(dh, dw), mode="bilinear", align_corners=False)
    s = s.reshape(-1)
    lo, hi = s.min(), s.max()
    if not bool(hi > lo):
        return None, dw
    return (s - lo) / (hi - lo), dw


def similarity_points(sm: torch.Tensor, grid: tuple[int, int], shape: tuple[int, int],
                      t: float = 0.8, down: int = 2) -> tuple[list[list[int]], list[bool]]:
    """Official ``similarity_map_to_points`` (SAM prompts), with fixes.

    sm: raw flat [gh*gw] patch similarities; shape: (H, W) of the original image.
    The map is downsampled by ``down`` to smooth it, min-max normalised, and the
    cells ranked. num = min(#(s >= t), cells // 2). Returns the top-num cells as
    positives (ascending rank order, i.e. the best last) then the bottom-num as
    negatives, each at its cell centre in original-image pixels.

    BUG FIXES / choices: a constant map yields no points (officially NaN); num = 0
    yields no points (officially ``rank[-0:]`` selects every cell as positive);
    non-square grids are allowed; the sort is stable; the pixel coordinates are
    computed in float64 (officially float32 tensor math) then truncated by int().
    """
    s, dw = _point_scores(sm, grid, down)
    if s is None:
        return [], []
    h, w = shape
    dh = s.numel() // dw
    rank = torch.sort(s, stable=True).indices.tolist()
    num = min(int((s >= t).sum()), s.numel() // 2)
    sh, sw = h / dh, w / dw

    def centre(idx: int) -> list[int]:
        return [int(min((idx % dw + 0.5) * sw, w - 1)), int(min((idx // dw + 0.5) * sh, h - 1))]

    chosen = rank[len(rank) - num:] + rank[:num]
    return [centre(i) for i in chosen], [True] * num + [False] * num


def points_margin(sm: torch.Tensor, grid: tuple[int, int], t: float = 0.8, down: int = 2) -> float | None:
    """How close ``similarity_points`` is to a different answer, in normalised score units.

    The smallest of: the distance of any cell score to the threshold t (decides
    num), and the gaps between adjacent sorted scores that decide which cells are
    picked and in what order (among the bottom num + 1 and the top num + 1). An
    independent f32 implementation moves these scores by ~1e-6, so point lists
    whose margin is below ~1e-4 may legitimately differ by swapped neighbours.
    None for a constant map.
    """
    s, _ = _point_scores(sm, grid, down)
    if s is None:
        return None
    num = min(int((s >= t).sum()), s.numel() // 2)
    margins = [(s - t).abs().min().item()]
    if num:
        gaps = torch.sort(s).values.diff()
        margins += [gaps[:num].min().item(), gaps[-num:].min().item()]
    return min(margins)


def points_entry(sm: torch.Tensor, grid: tuple[int, int], shape: tuple[int, int]) -> dict:
    xy, positive = similarity_points(sm, grid, shape)
    return {"xy": xy, "positive": positive, "margin": points_margin(sm, grid)}


# ---------------------------------------------------------------------------
# Goldens
# ---------------------------------------------------------------------------

class Goldens:
    """Computes every golden output for one model (the f32 run, or the f64 self-check)."""

    def __init__(self, model: CLIPModel):
        self.model = model
        self.vit = SurgeryViT(model)
        parts = [p.strip() for p in COMBINED.split("+")]
        # Each text's ensemble is computed independently, so encoding the distinct
        # texts once and picking rows is exactly equivalent to separate calls.
        distinct = list(dict.fromkeys([*LABELS, "", SINGLE, *parts]))
        table = dict(zip(distinct, prompt_ensemble(model, distinct)))
        self.labels = torch.stack([table[t] for t in LABELS])
        self.redundant = table[""]
        self.single = table[SINGLE][None]
        self.parts = torch.stack([table[t] for t in parts])
        self.prompt_ids = tokenize(PROMPTS)
        self.prompts = text_features(model, self.prompt_ids)
        self.tokens = token_features(model, TOKENS_TEXT)

    def text_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "text.labels": self.labels,
            "text.redundant": self.redundant,
            "text.combined_parts": self.parts,
            "text.prompts": self.prompts,
        }

    def case(self, pixels: torch.Tensor, shape: tuple[int, int], prefix: str
             ) -> tuple[dict[str, torch.Tensor], dict, dict]:
        """Goldens of one (image, size) case: (tensors, points, diagnostics)."""
        raw, grid = self.vit.features(pixels, surgery=False)
        surgery, grid_s = self.vit.features(pixels, surgery=True)
        assert grid == grid_s

        sim_labels = feature_surgery_labels(surgery, self.labels)
        sim_single = feature_surgery_single(surgery, self.single, self.redundant)
        sim_raw = raw @ self.labels.t()
        # Combined targets (demo.py 'person+bench'): single-text surgery per part,
        # min-max per part over patches, mean over parts.
        parts_sm = feature_surgery_single(surgery, self.parts, self.redundant)[1:]
        sim_combined = minmax_columns(parts_sm).mean(dim=-1, keepdim=True)
        cls = (self.model.logit_scale.exp() * raw[0] @ self.labels.t()).softmax(dim=-1)

        tensors = {
            f"image.{prefix}.raw": raw,
            f"image.{prefix}.surgery": surgery,
            f"sim.{prefix}.labels": sim_labels,
            f"sim.{prefix}.single": sim_single,
            f"sim.{prefix}.raw": sim_raw,
            f"sim.{prefix}.combined": sim_combined,
            f"map.{prefix}.labels": similarity_map(sim_labels[1:], grid, MAP_SIZE),
            f"map.{prefix}.raw": similarity_map(sim_raw[1:], grid, MAP_SIZE),
            f"cls.{prefix}": cls,
        }
        if prefix in REDUNDANCY_CASES:
            for kind, tokens in (("raw", raw), ("surgery", surgery)):
                # Fig. 2: cos with the "" ensemble, and the term clip_feature_surgery
                # removes from every class (its mean over classes, summed over channels).
                prob = ((tokens[:1] @ self.labels.t()) * 2).softmax(dim=-1)
                w = (prob / prob.mean(dim=-1, keepdim=True)).reshape(1, -1, 1)
                term = (tokens[:, None, :] * self.labels[None] * w).mean(dim=1).sum(dim=-1)
                empty = tokens @ self.redundant
                tensors[f"redundancy.{prefix}.{kind}"] = torch.stack([empty, term], dim=1)[1:]
        if prefix in ATTENTION_CASES:
            block, query = ATTENTION_CASES[prefix]
            tensors[f"attention.{prefix}"] = self.vit.attention_rows(pixels, block, query)
        if prefix in TOKEN_CASES:
            tensors[f"tokens.{prefix}.similarity"] = feature_surgery_labels(surgery, self.tokens)[1:]
            tensors[f"tokens.{prefix}.score"] = raw[0] @ self.tokens.t()
            tensors[f"tokens.{prefix}.raw"] = (raw @ self.tokens.t())[1:]

        # demo.py's combined prompt: negatives from the mean map, then each part's positives.
        mean_pts, mean_pos = similarity_points(sim_combined[:, 0], grid, shape)
        half = len(mean_pts) // 2
        comb_pts, comb_pos = mean_pts[half:], mean_pos[half:]
        for i in range(parts_sm.shape[1]):
            p, l = similarity_points(parts_sm[:, i], grid, shape)
            comb_pts, comb_pos = comb_pts + p[: len(p) // 2], comb_pos + l[: len(l) // 2]
        comb_margins = [points_margin(m, grid) for m in [sim_combined[:, 0], *parts_sm.t()]]
        points = {
            "labels": {lab: points_entry(sim_labels[1:, i], grid, shape) for i, lab in enumerate(LABELS)},
            "single": points_entry(sim_single[1:, 0], grid, shape),
            "combined": {"xy": comb_pts, "positive": comb_pos,
                         "margin": None if None in comb_margins else min(comb_margins)},
        }

        maps_in = [sim_labels[1:], sim_raw[1:], sim_single[1:], parts_sm]
        diag = {
            "grid": grid,
            "surgery_cls_vs_raw": (surgery[0] - raw[0]).abs().max().item(),
            "min_span": min((m.max(0).values - m.min(0).values).min().item() for m in maps_in),
        }
        return tensors, points, diag


def segmentation(scores: torch.Tensor, grid: tuple[int, int], shape: tuple[int, int],
                 background_words: int = 0, threshold: float | None = None,
                 scale: float = 100.0) -> torch.Tensor:
    """Open-vocabulary segmentation (the author's protocol, paper 5.2): each column's patch
    scores [N, K] bilinearly upsampled (align_corners=False) to the image, argmax over
    columns per pixel. Background rule (as SCLIP/ClearCLIP do for VOC): the last
    ``background_words`` columns are background words, and a pixel whose winner has
    softmax(scale * scores) below ``threshold`` is background. U8 [H, W], 255 = background."""
    planes = scores.t().reshape(1, -1, grid[0], grid[1])
    up = F.interpolate(planes, size=shape, mode="bilinear", align_corners=False)[0]
    mask = up.argmax(dim=0)
    labels = up.shape[0] - background_words
    background = mask >= labels
    if threshold is not None:
        background |= (up * scale).softmax(dim=0).max(dim=0).values < threshold
    mask[background] = 255
    return mask.to(torch.uint8)


def slide_scores(gold: "Goldens", image: Image.Image, short: int, window: int, stride: int
                 ) -> torch.Tensor:
    """Per-pixel cosine scores [K, h, w] of the resized image by sliding windows (mmseg's
    ``slide_inference``): the short side resized to ``short`` (PIL bicubic, as every input
    here; sides rounded to nearest), windows of ``window`` every ``stride`` pixels, the last
    one flush with the edge, each window's patch scores bilinearly upsampled to the window
    and summed, then divided by how many windows cover each pixel."""
    scale = short / min(image.height, image.width)
    h, w = int(image.height * scale + 0.5), int(image.width * scale + 0.5)
    _, pixels = preprocess(image, (h, w))
    k = gold.labels.shape[0]
    preds, count = torch.zeros(k, h, w), torch.zeros(1, h, w)
    rows = max(h - window + stride - 1, 0) // stride + 1
    cols = max(w - window + stride - 1, 0) // stride + 1
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + window, h), min(c * stride + window, w)
            y1, x1 = max(y2 - window, 0), max(x2 - window, 0)
            feats, grid = gold.vit.features(pixels[:, :, y1:y2, x1:x2], surgery=True)
            planes = (feats @ gold.labels.t())[1:].t().reshape(1, k, *grid)
            preds[:, y1:y2, x1:x2] += F.interpolate(planes, size=(y2 - y1, x2 - x1), mode="bilinear",
                                                    align_corners=False)[0]
            count[:, y1:y2, x1:x2] += 1
    return preds / count


def segmentation_goldens(gold: "Goldens", pixels: torch.Tensor, shape: tuple[int, int],
                         prefix: str) -> dict[str, torch.Tensor]:
    """The ``seg.{prefix}.{kind}`` masks of SEG_CASES[prefix]."""
    raw, grid = gold.vit.features(pixels, surgery=False)
    surgery, _ = gold.vit.features(pixels, surgery=True)
    scale = gold.model.logit_scale.exp().item()
    out = {}
    for kind in SEG_CASES.get(prefix, []):
        if kind == "cosine":
            mask = segmentation((surgery @ gold.labels.t())[1:], grid, shape)
        elif kind == "feature":
            mask = segmentation(feature_surgery_labels(surgery, gold.labels)[1:], grid, shape)
        elif kind == "raw":
            mask = segmentation((raw @ gold.labels.t())[1:], grid, shape)
        else:
            mask = segmentation((surgery @ gold.labels.t())[1:], grid, shape,
                                SEG_BACKGROUND_WORDS, SEG_THRESHOLD, scale)
        counts = torch.bincount(mask.flatten().long(), minlength=256)
        print(f"seg.{prefix}.{kind}: pixels per value "
              f"{ {i: int(c) for i, c in enumerate(counts.tolist()) if c} }")
        out[f"seg.{prefix}.{kind}"] = mask
    return out


def precision_self_check(model: CLIPModel, tensors: dict[str, torch.Tensor], points: dict,
                         inputs: dict[str, tuple[torch.Tensor, tuple[int, int]]]) -> None:
    """Re-run the pipeline in float64 and compare with the float32 goldens.

    The f32-vs-f64 gap approximates the rounding noise an independent f32
    implementation will show; it must stay far below the 1e-4 test tolerance.
    (HF's eager attention still computes its softmax in f32, which only affects
    the text tower here.) Prompt points that change must be ones flagged with a
    small decision margin in goldens.json.
    """
    gold64 = Goldens(copy.deepcopy(model).double())
    worst = {k: (v - tensors[k].double()).abs().max().item() for k, v in gold64.text_tensors().items()}
    changed = 0
    for prefix, (pixels, shape) in inputs.items():
        t64, p64, _ = gold64.case(pixels.double(), shape, prefix)
        for k, v in t64.items():
            family = k.replace(f".{prefix}", "")
            worst[family] = max(worst.get(family, 0.0), (v - tensors[k].double()).abs().max().item())
        for kind, ref, new in iter_point_sets(points[prefix], p64):
            if (ref["xy"], ref["positive"]) != (new["xy"], new["positive"]):
                assert ref["margin"] is not None and ref["margin"] < 1e-4, f"{prefix} {kind}: points unstable"
                changed += 1
    print("float32 vs float64 pipeline, max |diff| per golden family:")
    for family, err in sorted(worst.items()):
        print(f"  {family:24s} {err:.2e}")
    assert max(worst.values()) < 2e-5, "a golden is too sensitive to rounding for a 1e-4 comparison"
    margins = [ref["margin"] for prefix in inputs for _, ref, _ in iter_point_sets(points[prefix], points[prefix])]
    print(f"prompt-point sets: {len(margins)}; decision margin < 1e-4: "
          f"{sum(m is None or m < 1e-4 for m in margins)} (smallest {min(m for m in margins if m is not None):.1e}); "
          f"changed in f64: {changed}")


def iter_point_sets(a: dict, b: dict):
    """Pairs up the point sets of two ``points`` entries of one case."""
    for label in LABELS:
        yield f"labels/{label}", a["labels"][label], b["labels"][label]
    yield "single", a["single"], b["single"]
    yield "combined", a["combined"], b["combined"]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main() -> None:
    start = time.time()
    torch.manual_seed(SEED)

    # 1. Model files.
    model = build_tiny_model()
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(MODEL_DIR / "config.json")
    hf_sd = hf_state_dict(model)
    save_file(hf_sd, MODEL_DIR / "model.safetensors", metadata={"format": "pt"})
    openai_sd = hf_to_openai(hf_sd)
    save_file(openai_sd, OPENAI_WEIGHTS, metadata={"format": "pt"})

    # Every golden below comes from the committed files, reloaded as float32.
    model = CLIPModel.from_pretrained(MODEL_DIR, dtype=torch.float32, attn_implementation="eager").eval()
    reloaded = model.state_dict()
    for name, tensor in hf_sd.items():
        assert torch.equal(reloaded[name], tensor.float()), name
    assert torch.equal(load_file(OPENAI_WEIGHTS)["logit_scale"], hf_sd["logit_scale"])

    # 2. Images.
    write_images()
    images = {name: load_image(name) for name in IMAGES}

    # 3. Cross-checks of the manual vision path (vs HF) and of the OpenAI-named file (vs open_clip).
    _, pixels224 = preprocess(images["astronaut"], (224, 224))
    vit = SurgeryViT(model)
    manual, _ = vit.encode_tokens(pixels224, surgery=False)
    hf_tokens = model.vision_model(pixel_values=pixels224).last_hidden_state
    err_manual = (manual - hf_tokens).abs().max().item()
    assert err_manual < 1e-5, f"manual ViT vs HF: {err_manual}"
    hf_image = model.get_image_features(pixel_values=pixels224)
    hf_image = hf_image if isinstance(hf_image, torch.Tensor) else hf_image.pooler_output
    manual_cls = vit.projection(vit.vision.post_layernorm(manual[:, 0]))
    err_cls = (manual_cls - hf_image).abs().max().item()
    assert err_cls < 1e-5, f"manual CLS feature vs HF get_image_features: {err_cls}"

    twin = open_clip_twin(model.config, openai_sd)
    ids = tokenize(PROMPTS)
    err_oc_image = (twin.encode_image(pixels224) - hf_image).abs().max().item()
    err_oc_text = (twin.encode_text(ids) - text_features(model, ids)).abs().max().item()
    assert err_oc_image < 1e-5 and err_oc_text < 1e-5, (err_oc_image, err_oc_text)
    print(f"manual ViT tokens vs HF last_hidden_state (224): max |diff| = {err_manual:.2e}")
    print(f"manual CLS feature vs HF get_image_features:     max |diff| = {err_cls:.2e}")
    print(f"open_clip vs HF: encode_image {err_oc_image:.2e}, encode_text {err_oc_text:.2e}")

    # 4. Goldens (float32).
    gold = Goldens(model)
    tensors = dict(gold.text_tensors())
    points, cases, diags, inputs, shapes = {}, [], {}, {}, {}
    for name, size in CASES:
        prefix = f"{name}.{size_tag(size)}"
        resized, pixels = preprocess(images[name], size)
        shape = (images[name].height, images[name].width)
        inputs[prefix], shapes[prefix] = pixels, shape
        case_tensors, case_points, diag = gold.case(pixels, shape, prefix)
        assert diag["surgery_cls_vs_raw"] == 0.0, "the surgery CLS token must be the raw CLS token"
        tensors[f"resized.{prefix}"] = torch.from_numpy(resized)
        tensors.update(case_tensors)
        tensors.update(segmentation_goldens(gold, pixels, shape, prefix))
        points[prefix] = case_points
        diags[prefix] = diag
        cases.append({"image": name, "size": list(size), "grid": list(diag["grid"]), "tag": size_tag(size)})

    for name in SLIDE_IMAGES:
        image = images[name]
        scores = slide_scores(gold, image, *SLIDE)
        planes = scores.reshape(scores.shape[0], -1).t()  # [h*w, K], the "grid" being pixels
        tensors[f"seg.{name}.slide"] = segmentation(planes, tuple(scores.shape[1:]),
                                                    (image.height, image.width))

    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() if v.dtype == torch.uint8 else v.float().contiguous()
               for k, v in sorted(tensors.items())}
    save_file(tensors, GOLDEN_DIR / "goldens.safetensors")
    meta = {
        "labels": LABELS,
        "single": SINGLE,
        "combined": COMBINED,
        "prompts": PROMPTS,
        "prompt_ids": gold.prompt_ids.tolist(),
        "map_size": list(MAP_SIZE),
        "tokens": {"text": TOKENS_TEXT, "texts": token_texts(TOKENS_TEXT), "cases": TOKEN_CASES},
        "attention": {case: {"block": b, "query": q} for case, (b, q) in ATTENTION_CASES.items()},
        "redundancy": REDUNDANCY_CASES,
        "segmentation": {"cases": SEG_CASES, "background_words": SEG_BACKGROUND_WORDS,
                         "threshold": SEG_THRESHOLD, "slide": list(SLIDE), "slide_images": SLIDE_IMAGES},
        "logit_scale": model.logit_scale.item(),
        "images": {name: {"path": f"images/{IMAGES[name]}", "height": im.height, "width": im.width}
                   for name, im in images.items()},
        "cases": cases,
        "points": points,
    }
    (GOLDEN_DIR / "goldens.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")

    # 5. How much would rounding noise move each golden?
    precision_self_check(model, tensors, points, {p: (inputs[p], shapes[p]) for p in inputs})
    print(f"smallest per-class patch-similarity span (min-max denominator): "
          f"{min(d['min_span'] for d in diags.values()):.3e}")

    size = (GOLDEN_DIR / "goldens.safetensors").stat().st_size
    print(f"wrote {len(tensors)} golden tensors ({size / 1e6:.2f} MB) in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
