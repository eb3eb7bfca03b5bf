"""Read a kohya dataset the way sd-scripts does: a DreamBooth folder or a dataset TOML.

DreamBooth folder (``--train_data_dir``): every sub-folder named ``<repeats>_<class tokens>`` is a subset; others
are ignored (sd-scripts warns; so do we). Dataset TOML (``--dataset_config``): ``[[datasets.subsets]]`` with
``image_dir``; values fall back subset → dataset → general → default, as in sd-scripts. In both forms images are
the files ``*.png|jpg|jpeg|webp|bmp`` (lower or upper case, as sd-scripts' glob matches them; hidden files are
not matched) directly in the subset folder, no recursion, and the caption is read from ``<stem><caption_extension>``
(:mod:`orchestrator.datasets.captions`).

Everything that could go wrong is collected as a :class:`Finding` naming the file, so that lint can list all of it;
a snapshot refuses the dataset on the first blocking one. Images are hashed from one read of their bytes, and
checked for corruption: PNG with ``Image.verify()`` (chunk CRCs and truncation, no decode: cheap), every other
format with a full decode (their ``verify()`` checks nothing).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.datasets.captions import CaptionDecodeError, caption_from_bytes, sha256_text
from orchestrator.datasets.dataset_toml import load_dataset_toml, validate_dataset_config
from orchestrator.datasets.findings import ERROR, WARNING, Finding, blocks_snapshot
from orchestrator.errors import InputError

# sd-scripts' IMAGE_EXTENSIONS (without the optional avif/jxl plugins); its glob is case-sensitive on Linux, so
# only these spellings count.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
# train_network.py's --caption_extension defaults to ".caption"; the users (and most guides) use ".txt".
DEFAULT_CAPTION_EXTENSION = ".txt"
SOURCE_DREAMBOOTH = "dreambooth"
SOURCE_TOML = "dataset_toml"


@dataclass(frozen=True)
class Subset:
    """One subset as sd-scripts will use it (values after the TOML fallbacks)."""

    name: str  # the folder (DreamBooth form) or image_dir relative to the root (TOML form)
    image_dir: str  # '/'-separated, relative to the dataset root
    num_repeats: int
    class_tokens: str | None
    caption_extension: str
    keep_tokens: int = 0
    keep_tokens_separator: str | None = None
    caption_separator: str = ","
    caption_prefix: str | None = None
    caption_suffix: str | None = None
    enable_wildcard: bool = False
    is_reg: bool = False
    key: str | None = None  # datasets[i].subsets[j] in the TOML form

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageFile:
    """One image of the manifest: its content, its pixels and the caption sd-scripts will train it with."""

    path: str
    subset: str
    sha256: str
    size: int
    width: int
    height: int
    mode: str
    format: str
    caption: str
    caption_sha256: str
    caption_source: str  # "file" | "class_tokens" | "none"
    caption_file: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetFile:
    """A file of the dataset as it lies on disk (and in the archive)."""

    path: str
    sha256: str
    size: int
    kind: str  # "image" | "caption" | "dataset_toml"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScannedDataset:
    root: Path  # resolved
    shown_root: str  # as the user named it, for messages
    source_kind: str
    source_path: str
    dataset_toml: str | None  # the TOML's path relative to the root
    dataset_toml_text: str | None
    caption_extension: str  # the --caption-extension the scan used where the dataset did not say
    subsets: tuple[Subset, ...]
    images: tuple[ImageFile, ...]
    files: tuple[DatasetFile, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def caption_pairs(self) -> list[tuple[str, str]]:
        return [(image.sha256, image.caption) for image in self.images]

    def captions_from_files(self) -> list[bool]:
        """Per image (as in :meth:`caption_pairs`): whether its caption was read from its caption file."""
        return [image.caption_source == "file" for image in self.images]

    def shown(self, rel: str) -> str:
        return os.path.join(self.shown_root, *rel.split("/")) if rel not in ("", ".") else self.shown_root


def normalise_caption_extension(extension: str) -> str:
    # sd-scripts adds the dot when it is missing (BaseSubset.__init__).
    return extension if not extension or extension.startswith(".") else "." + extension


def scan_dataset(
    path: str | os.PathLike[str],
    *,
    caption_extension: str = DEFAULT_CAPTION_EXTENSION,
    workers: int | None = None,
) -> ScannedDataset:
    """Read the dataset at ``path`` (folder or ``.toml``); problems are in ``findings``, never raised.

    Only a path that is neither a folder nor a file raises (there is nothing to report findings about).
    """
    given = Path(path)
    caption_extension = normalise_caption_extension(caption_extension)
    if given.is_dir():
        return _Scanner(given, given, caption_extension, workers).scan_folder()
    if given.is_file():
        return _Scanner(given.parent if str(given.parent) else Path("."), given, caption_extension,
                        workers).scan_toml()
    if given.is_symlink():
        raise InputError(f"{given}: a broken link", "give the path of a dataset folder or dataset TOML")
    raise InputError(f"{given}: no such file or folder", "give the path of a dataset folder or dataset TOML")


class _Scanner:
    def __init__(self, root: Path, source: Path, caption_extension: str, workers: int | None) -> None:
        self.shown_root = str(root)
        self.root = root.resolve()
        self.source = source
        self.caption_extension = caption_extension
        self.workers = workers or min(8, (os.cpu_count() or 1) * 2)
        self.findings: list[Finding] = []

    # ---- helpers -----------------------------------------------------------------------------------------------

    def shown(self, rel: str) -> str:
        return os.path.join(self.shown_root, *rel.split("/")) if rel not in ("", ".") else self.shown_root

    def add(self, severity: str, code: str, rel: str, message: str, hint: str | None = None,
            key: str | None = None, shown: str | None = None) -> None:
        self.findings.append(Finding(severity, code, shown or self.shown(rel), message, hint, key))

    def inside(self, full: str) -> bool:
        real = os.path.realpath(full)
        return real == str(self.root) or real.startswith(str(self.root) + os.sep)

    def result(self, kind: str, subsets: list[Subset], toml_rel: str | None = None,
               toml_text: str | None = None, toml_bytes: bytes | None = None) -> ScannedDataset:
        images: list[ImageFile] = []
        files: dict[str, DatasetFile] = {}
        if not self.has_blocking():
            images, files = self.read_subsets(subsets)
            if not images and not self.has_blocking():
                self.add(ERROR, "empty-dataset", "", "no images found (sd-scripts would train on nothing)",
                         self.empty_hint(kind))
        if toml_rel is not None and toml_bytes is not None:
            files[toml_rel] = DatasetFile(toml_rel, hashlib.sha256(toml_bytes).hexdigest(), len(toml_bytes),
                                          "dataset_toml")
        return ScannedDataset(
            root=self.root, shown_root=self.shown_root, source_kind=kind, source_path=str(self.source.resolve()),
            dataset_toml=toml_rel, dataset_toml_text=toml_text, caption_extension=self.caption_extension,
            subsets=tuple(sorted(subsets, key=lambda s: s.name)), images=tuple(sorted(images, key=lambda i: i.path)),
            files=tuple(sorted(files.values(), key=lambda f: f.path)), findings=tuple(self.findings),
        )

    def has_blocking(self) -> bool:
        return any(blocks_snapshot(f) for f in self.findings)

    @staticmethod
    def empty_hint(kind: str) -> str:
        if kind == SOURCE_DREAMBOOTH:
            return "put the images in sub-folders named <repeats>_<class tokens>, e.g. 10_bespoke_punk/"
        return "check each subset's image_dir"

    # ---- DreamBooth folder ------------------------------------------------------------------------------------

    def scan_folder(self) -> ScannedDataset:
        subsets: list[Subset] = []
        for entry in self.listdir(self.root, ""):
            if entry.name.startswith("."):
                continue  # .git, .DS_Store, our own staging folders: not datasets
            full = entry.path
            if not self.inside(full):
                self.add(ERROR, "outside-root", entry.name, "a link leading outside the dataset root",
                         "copy the files into the dataset folder instead of linking them")
                continue
            if not entry.is_dir():
                if entry.name.endswith(IMAGE_EXTENSIONS):
                    self.add(WARNING, "top-level-image", entry.name,
                             "an image at the top level: sd-scripts only reads <repeats>_<class tokens> folders")
                continue
            head, _, rest = entry.name.partition("_")
            try:
                repeats = int(head)  # as sd-scripts: int() of the text before the first '_'
            except ValueError:
                self.add(WARNING, "ignored-folder", entry.name,
                         "folder without a repeat count: sd-scripts ignores it",
                         f"rename it to <repeats>_<class tokens>, e.g. 10_{entry.name}")
                continue
            if repeats < 1:
                self.add(ERROR, "bad-repeats", entry.name,
                         f"repeat count {repeats} (sd-scripts silently skips folders with fewer than 1 repeat)",
                         "use a repeat count of 1 or more")
                continue
            subsets.append(Subset(name=entry.name, image_dir=entry.name, num_repeats=repeats, class_tokens=rest,
                                  caption_extension=self.caption_extension))
        return self.result(SOURCE_DREAMBOOTH, subsets)

    def listdir(self, directory: Path, rel: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as entries:
                return sorted(entries, key=lambda e: e.name)
        except PermissionError:
            self.add(ERROR, "unreadable", rel, "cannot list the folder (permission denied)",
                     "check the folder's permissions")
        except OSError as error:
            self.add(ERROR, "unreadable", rel, f"cannot list the folder ({error.strerror or error})",
                     "check the folder (permissions, disk) and try again")
        return []

    # ---- dataset TOML -----------------------------------------------------------------------------------------

    def scan_toml(self) -> ScannedDataset:
        toml_rel = self.source.name
        shown_toml = str(self.source)
        data, text = load_dataset_toml(self.source)
        toml_bytes = text.encode("utf-8")
        problems = validate_dataset_config(data, shown_toml)
        self.findings.extend(problems)
        if any(p.is_error for p in problems):
            return self.result(SOURCE_TOML, [], toml_rel, text, toml_bytes)
        general = data.get("general", {})
        subsets: list[Subset] = []
        seen: dict[str, str] = {}
        for i, dataset in enumerate(data.get("datasets", [])):
            for j, raw in enumerate(dataset.get("subsets", [])):
                key = f"datasets[{i}].subsets[{j}]"

                def get(name: str, default: Any = None, *, levels=(raw, dataset, general)) -> Any:
                    for level in levels:
                        if level.get(name) is not None:
                            return level[name]
                    return default

                if "metadata_file" in raw or "conditioning_data_dir" in raw:
                    self.add(ERROR, "unsupported-subset", "", "fine-tuning and ControlNet subsets are not supported "
                             "by snapshots yet", "use DreamBooth-style subsets (image_dir + caption files)",
                             key=key, shown=shown_toml)
                    continue
                image_dir = raw["image_dir"]
                full = image_dir if os.path.isabs(image_dir) else os.path.join(self.root, image_dir)
                if not self.inside(full):
                    self.add(ERROR, "outside-root", "", f"image_dir {image_dir!r} leads outside the dataset root "
                             f"({self.shown_root or '.'}, the TOML's folder)",
                             "keep the TOML in the folder that holds its image folders", key=f"{key}.image_dir",
                             shown=shown_toml)
                    continue
                if not os.path.isdir(full):
                    self.add(ERROR, "missing-image-dir", "", f"image_dir {image_dir!r} is not a folder",
                             "image_dir is relative to the TOML's folder here", key=f"{key}.image_dir",
                             shown=shown_toml)
                    continue
                rel = PurePosixPath(Path(os.path.realpath(full)).relative_to(self.root).as_posix()).as_posix()
                if rel in seen:
                    self.add(ERROR, "duplicate-image-dir", "", f"image_dir {image_dir!r} is also used by {seen[rel]}",
                             "a snapshot needs each image folder once", key=f"{key}.image_dir", shown=shown_toml)
                    continue
                seen[rel] = key
                repeats = get("num_repeats", 1, levels=(raw, dataset, general))
                if repeats < 1:
                    self.add(ERROR, "bad-repeats", "", f"num_repeats is {repeats}", "use 1 or more",
                             key=f"{key}.num_repeats", shown=shown_toml)
                    continue
                extension = get("caption_extension")
                if extension is None:
                    extension = self.caption_extension
                    self.add(WARNING, "caption-extension-unset", "", f"caption_extension is not set; read captions "
                             f"as {extension!r}, but sd-scripts will use --caption_extension (default '.caption')",
                             "set caption_extension in [general] or the subset", key=key, shown=shown_toml)
                subsets.append(Subset(
                    name=rel, image_dir=rel, num_repeats=repeats, class_tokens=get("class_tokens"),
                    caption_extension=normalise_caption_extension(extension), keep_tokens=get("keep_tokens", 0),
                    keep_tokens_separator=get("keep_tokens_separator") or None,
                    caption_separator=get("caption_separator", ","), caption_prefix=get("caption_prefix"),
                    caption_suffix=get("caption_suffix"), enable_wildcard=bool(get("enable_wildcard", False)),
                    is_reg=bool(raw.get("is_reg", False)), key=key,
                ))
        return self.result(SOURCE_TOML, subsets, toml_rel, text, toml_bytes)

    # ---- images and captions ----------------------------------------------------------------------------------

    def read_subsets(self, subsets: list[Subset]) -> tuple[list[ImageFile], dict[str, DatasetFile]]:
        jobs: list[tuple[Subset, str]] = []
        for subset in subsets:
            jobs.extend((subset, rel) for rel in self.subset_images(subset))
        images: list[ImageFile] = []
        files: dict[str, DatasetFile] = {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for outcome in pool.map(lambda job: self.read_image(*job), jobs):
                image, image_file, caption_file, findings = outcome
                self.findings.extend(findings)
                if image is not None:
                    images.append(image)
                for item in (image_file, caption_file):
                    if item is not None:
                        files[item.path] = item
        return images, files

    def subset_images(self, subset: Subset) -> Iterator[str]:
        directory = self.root / subset.image_dir if subset.image_dir != "." else self.root
        prefix = "" if subset.image_dir == "." else subset.image_dir + "/"
        entries = self.listdir(directory, subset.image_dir)
        stems = set()
        captions = []
        found = 0
        for entry in entries:
            name = entry.name
            rel = prefix + name
            if name.startswith("."):
                continue  # glob('*') does not match hidden files
            if name.endswith(IMAGE_EXTENSIONS):
                found += 1
                stems.add(os.path.splitext(name)[0])
                yield rel
                continue
            if subset.caption_extension and name.endswith(subset.caption_extension):
                captions.append((name, rel))
                continue
            lower = name.lower()
            if lower.endswith(tuple(e.lower() for e in IMAGE_EXTENSIONS)):
                self.add(WARNING, "ignored-extension", rel, "sd-scripts does not read this extension's spelling "
                         "(it matches .png or .PNG, not mixed case)", "rename the extension to lower case")
            elif entry.is_dir() and subset.image_dir != ".":
                self.add(WARNING, "not-recursed", rel, "a sub-folder: sd-scripts does not look inside it")
        for name, rel in captions:
            stem = name[: -len(subset.caption_extension)]
            if stem not in stems and not any(s.startswith(stem + "_") for s in stems):
                self.add(WARNING, "orphan-caption", rel, "a caption file with no image of the same name")
        if found == 0:
            self.add(WARNING, "empty-subset", subset.image_dir, "no images in this folder")

    def read_image(self, subset: Subset, rel: str):
        findings: list[Finding] = []
        full = os.path.join(self.root, *rel.split("/"))
        shown = self.shown(rel)

        def fail(code: str, message: str, hint: str):
            findings.append(Finding(ERROR, code, shown, message, hint))
            return None, None, None, findings

        if not self.inside(full):
            return fail("outside-root", "a link leading outside the dataset root",
                        "copy the file into the dataset instead of linking it")
        data, problem = _read_regular(full)
        if problem:
            return fail(*problem)
        sha, size = hashlib.sha256(data).hexdigest(), len(data)
        try:
            width, height, mode, fmt = _inspect_image(data)
        except _NotAnImage as error:
            return fail("not-an-image", str(error), "remove the file or replace it with the real image")
        except _BadImage as error:
            return fail("corrupt-image", str(error), "re-export or re-download the image")
        del data
        image_file = DatasetFile(rel, sha, size, "image")
        caption, source, caption_file, caption_findings = self.read_caption(subset, rel)
        findings.extend(caption_findings)
        if any(blocks_snapshot(f) for f in caption_findings):
            return None, image_file, None, findings  # the caption is unreadable: nothing sensible to record
        image = ImageFile(path=rel, subset=subset.name, sha256=sha, size=size, width=width,
                          height=height, mode=mode, format=fmt, caption=caption or "",
                          caption_sha256=sha256_text(caption or ""), caption_source=source,
                          caption_file=caption_file.path if caption_file else None)
        return image, image_file, caption_file, findings

    def read_caption(self, subset: Subset, image_rel: str):
        """(caption or None, source, caption DatasetFile, findings) as sd-scripts' read_caption would see it."""
        findings: list[Finding] = []
        directory, _, name = image_rel.rpartition("/")
        stem = os.path.splitext(name)[0]
        candidates = [stem]
        tokens = stem.split("_")
        if len(tokens) >= 5:
            # sd-scripts' face-crop naming (<name>_<4 numbers>): it also tries the caption of <name>.
            candidates.append("_".join(tokens[:-4]))
        for candidate in candidates:
            rel = f"{directory}/{candidate}{subset.caption_extension}" if directory else \
                f"{candidate}{subset.caption_extension}"
            full = os.path.join(self.root, *rel.split("/"))
            if not os.path.isfile(full):
                continue
            shown = self.shown(rel)
            if not self.inside(full):
                findings.append(Finding(ERROR, "outside-root", shown, "a link leading outside the dataset root",
                                        "copy the file into the dataset instead of linking it"))
                return None, "file", None, findings
            raw, problem = _read_regular(full)
            if problem:
                findings.append(Finding(ERROR, problem[0], shown, problem[1], problem[2] if len(problem) > 2 else None))
                return None, "file", None, findings
            caption_file = DatasetFile(rel, hashlib.sha256(raw).hexdigest(), len(raw), "caption")
            try:
                caption = caption_from_bytes(raw, enable_wildcard=subset.enable_wildcard)
            except CaptionDecodeError as error:
                findings.append(Finding(ERROR, "caption-not-utf8", shown,
                                        f"caption file is {error} (sd-scripts stops with 'illegal char in file')",
                                        "save the caption as UTF-8"))
                return None, "file", None, findings
            if caption is None:
                findings.append(Finding(ERROR, "empty-caption", shown,
                                        "caption file is empty (sd-scripts stops with 'caption file is empty')",
                                        "write the caption on the first line"))
                caption = ""
            elif not caption:
                findings.append(Finding(ERROR, "empty-caption", shown, "caption is empty (blank first line)",
                                        "write the caption on the first line"))
            elif caption.startswith("\ufeff"):
                findings.append(Finding(WARNING, "caption-bom", shown, "caption starts with a byte-order mark, "
                                        "which sd-scripts keeps as part of the caption", "save without BOM"))
            return caption, "file", caption_file, findings
        class_tokens = subset.class_tokens or None
        used = f"the class tokens {class_tokens!r}" if class_tokens else "an empty caption"
        hint = None
        for other in (".txt", ".caption"):
            if other != subset.caption_extension and os.path.isfile(
                    os.path.join(self.root, *(f"{directory}/{stem}{other}" if directory else stem + other).split("/"))):
                hint = f"found {stem}{other}: is the caption extension {other}? (--caption-extension {other})"
        findings.append(Finding(ERROR, "missing-caption", self.shown(image_rel),
                                f"no caption file {stem}{subset.caption_extension}; sd-scripts will train on {used}",
                                hint or f"write {stem}{subset.caption_extension}"))
        return class_tokens, "class_tokens" if class_tokens else "none", None, findings


# What Pillow raises for bytes that are not a whole image: truncation, bad chunks or CRCs, broken zlib streams,
# oversized text chunks (ValueError), bad headers. Shared with scoring, which decodes images it did not scan.
IMAGE_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)


class _NotAnImage(Exception):
    pass


class _BadImage(Exception):
    pass


def _read_regular(full: str) -> tuple[bytes, tuple[str, ...] | None]:
    """The bytes of a regular file, or (code, message, hint) saying why not. Never opens FIFOs or devices."""
    try:
        info = os.stat(full)
    except FileNotFoundError:
        return b"", ("unreadable", "a broken link or a file that vanished while reading",
                     "remove the link, or point it at a file inside the dataset")
    except OSError as error:
        return b"", ("unreadable", f"cannot read ({error.strerror or error})",
                     "check the file and its folder (permissions, disk) and try again")
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (device, FIFO or socket)"
        return b"", ("not-a-file", f"is {kind}", "remove it or rename it so that it has no image extension")
    try:
        with open(full, "rb") as handle:
            return handle.read(), None
    except PermissionError:
        return b"", ("unreadable", "cannot read (permission denied)", "check the file's permissions")
    except OSError as error:
        return b"", ("unreadable", f"cannot read ({error.strerror or error})",
                     "check the file (permissions, disk) and try again")


def _inspect_image(data: bytes) -> tuple[int, int, str, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            mode, fmt = image.mode, image.format or "?"
            try:
                if fmt == "PNG":
                    image.verify()  # every chunk's CRC and the IEND: catches truncation and flipped bits, no decode
                else:
                    image.load()  # verify() is a no-op for JPEG/WebP/BMP: decode fully
            except IMAGE_DECODE_ERRORS as error:
                raise _BadImage(f"corrupt or truncated {fmt} image ({brief_error(error)})") from None
    except UnidentifiedImageError:
        raise _NotAnImage("not an image (Pillow cannot identify it)") from None
    except Image.DecompressionBombError as error:
        raise _BadImage(f"image too large to open safely ({brief_error(error)})") from None
    except IMAGE_DECODE_ERRORS as error:
        raise _BadImage(f"corrupt image header ({brief_error(error)})") from None
    if width < 1 or height < 1:
        raise _BadImage(f"image has no pixels ({width}x{height})")
    return width, height, mode, fmt


def brief_error(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."
