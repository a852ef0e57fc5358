"""ZeroSpeech 2021 phonetic (ABX) submissions: the layout ``encode --format zerospeech`` writes, and its checks.

Layout (the submission root is ``OUT/zerospeech/``)::

    meta.yaml
    phonetic/<subset>/<name>.txt     one frame per line, D floats; subsets dev-clean, dev-other, test-clean, test-other

``check_submission`` makes the checks of the benchmark's own validators, so a submission can be checked
before it is uploaded:

- ``meta.yaml`` as zerospeech2021's ``meta.validate`` wants it: exactly the keys author, affiliation,
  description, train_set (non-empty strings), open_source, visually_ground (booleans), gpu_budget (a
  float: ``10.0``, not ``10``) and parameters, which holds exactly ``phonetic`` (metric one of cosine,
  euclidean, kl, kl_symmetric; frame_shift a float, seconds) and ``semantic`` (metric a scipy distance;
  pooling min, max, mean, sum, last or lastlast). Values still ``<like this>`` are template values
  (the zerospeech-benchmarks toolkit refuses them).
- features as zerospeech-benchmarks' ABX-LS validator wants them: every file under ``phonetic/<subset>/``
  is a ``.txt`` (``np.loadtxt``) or ``.npy`` array of dtype float64 with 2 dimensions (frames, D), and
  D is the same in every file; finite values (ABX distances of NaN mean nothing).
- with the dataset folder: one feature file per input ``.wav`` of each subset submitted (same name),
  no extra files, and both subsets of a set (dev-clean and dev-other, test-clean and test-other)
  as zerospeech2021's ``phonetic.validate`` requires.

Usage: ``python -m audio_vqvae.inference.zerospeech SUBMISSION [DATASET]`` prints every problem, one a line.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import yaml

from ..errors import TokenFormatError

SUBMISSION_DIR = "zerospeech"
PHONETIC = "phonetic"
META = "meta.yaml"
SETS = {"dev": ("dev-clean", "dev-other"), "test": ("test-clean", "test-other")}
SUBSETS = SETS["dev"] + SETS["test"]
METRICS = ("cosine", "euclidean", "kl", "kl_symmetric")
POOLINGS = ("min", "max", "mean", "sum", "last", "lastlast")
FEATURE_SUFFIXES = (".txt", ".npy")

# What the package cannot know: left as template values for the user to fill in (--zerospeech-meta).
_USER_FIELDS = {
    "author": "<author(s)>",
    "affiliation": "<affiliation>",
    "train_set": "<the corpus the model was trained on>",
    "gpu_budget": "<GPU hours of training, a float>",
}
_TOP = {
    "author": str,
    "affiliation": str,
    "description": str,
    "open_source": bool,
    "train_set": str,
    "visually_ground": bool,
    "gpu_budget": float,
    "parameters": dict,
}
_TEMPLATE = re.compile(r"^<.*>$", re.DOTALL)


def feature_relpath(uid: str) -> Path:
    """``phonetic/<subset>/<name>.txt`` of an id ``<subset>/<name>`` (from encoding the dataset's phonetic/ folder)."""
    subset = uid.split("/", 1)[0]
    if subset not in SUBSETS or "/" not in uid:
        raise TokenFormatError(
            f"utterance id {uid!r}: the zerospeech format needs ids '<subset>/<name>' with a subset of "
            f"{', '.join(SUBSETS)}; encode the ZeroSpeech dataset's phonetic/ folder"
        )
    return Path(PHONETIC) / f"{uid}.txt"


def meta_yaml(frame_shift: float, fields: dict | None = None) -> str:
    """``meta.yaml`` text: ``frame_shift`` (seconds per frame) and the package's defaults, under ``fields``.

    ``fields`` (e.g. from ``--zerospeech-meta``) override top-level keys; a ``parameters`` mapping is
    merged one level down (``{"phonetic": {"metric": "euclidean"}}`` keeps frame_shift).
    """
    meta = {
        **_USER_FIELDS,
        "description": "VQ-VAE (audio_vqvae) frame vectors",
        "open_source": True,
        "visually_ground": False,
        "parameters": {
            "phonetic": {"metric": "cosine", "frame_shift": float(frame_shift)},
            "semantic": {"metric": "cosine", "pooling": "mean"},  # required by the validator, unused for ABX
        },
    }
    fields = dict(fields or {})
    parameters = fields.pop("parameters", None) or {}
    if not isinstance(parameters, dict):
        raise TokenFormatError(f"zerospeech meta: parameters must be a mapping, got {parameters!r}")
    meta.update(fields)
    for key, value in parameters.items():
        base = meta["parameters"].get(key)
        meta["parameters"][key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    if isinstance(meta["gpu_budget"], int) and not isinstance(meta["gpu_budget"], bool):
        meta["gpu_budget"] = float(meta["gpu_budget"])  # the validator wants a float: 10 would be refused
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def read_meta_fields(path: str | Path) -> dict:
    """A user's YAML mapping of meta.yaml fields (``--zerospeech-meta``)."""
    path = Path(path)
    if not path.is_file():
        raise TokenFormatError(f"{path}: zerospeech meta file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise TokenFormatError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise TokenFormatError(f"{path}: expected a mapping of meta.yaml fields (author: ..., ...)")
    return data


# ---- checks -------------------------------------------------------------------------------------
def _check_keys(where: str, data: dict, types: dict, problems: list[str]) -> None:
    missing = [k for k in types if k not in data]
    extra = [k for k in data if k not in types]
    if missing:
        problems.append(f"{where}: missing key(s) {', '.join(missing)}")
    if extra:
        problems.append(f"{where}: unknown key(s) {', '.join(map(str, extra))} (the validator wants exactly these)")
    for key, typ in types.items():
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, str) and _TEMPLATE.match(value.strip()):
            problems.append(f"{where}: {key} is a template value {value!r}; fill it in")
        elif not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
            hint = " (write 10.0, not 10)" if typ is float and isinstance(value, int) else ""
            problems.append(f"{where}: {key} must be a {typ.__name__}, got {value!r}{hint}")
        elif typ is str and not value.strip():
            problems.append(f"{where}: {key} must not be empty")


def check_meta(root: str | Path) -> list[str]:
    """Problems of ``root/meta.yaml``, each naming the file and key; [] when the validator accepts it."""
    path = Path(root) / META
    if not path.is_file():
        return [f"{path}: missing"]
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8").replace("\t", " "))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        return [f"{path}: not valid YAML ({str(e).splitlines()[0]})"]
    if not isinstance(meta, dict):
        return [f"{path}: expected a mapping"]
    problems: list[str] = []
    _check_keys(str(path), meta, _TOP, problems)
    parameters = meta.get("parameters")
    if not isinstance(parameters, dict):
        return problems
    _check_keys(f"{path}: parameters", parameters, {"phonetic": dict, "semantic": dict}, problems)
    phonetic, semantic = parameters.get("phonetic"), parameters.get("semantic")
    if isinstance(phonetic, dict):
        _check_keys(f"{path}: parameters/phonetic", phonetic, {"metric": str, "frame_shift": float}, problems)
        if isinstance(phonetic.get("metric"), str) and phonetic["metric"] not in METRICS:
            problems.append(f"{path}: parameters/phonetic/metric must be one of {', '.join(METRICS)}")
        shift = phonetic.get("frame_shift")
        if isinstance(shift, float) and not shift > 0:
            problems.append(f"{path}: parameters/phonetic/frame_shift must be > 0 seconds, got {shift}")
    if isinstance(semantic, dict):
        _check_keys(f"{path}: parameters/semantic", semantic, {"metric": str, "pooling": str}, problems)
        if isinstance(semantic.get("pooling"), str) and semantic["pooling"] not in POOLINGS:
            problems.append(f"{path}: parameters/semantic/pooling must be one of {', '.join(POOLINGS)}")
        if isinstance(semantic.get("metric"), str) and not _TEMPLATE.match(semantic["metric"]):
            from scipy.spatial.distance import cdist

            try:
                cdist(np.ones((2, 2)), np.ones((2, 2)), semantic["metric"])
            except (ValueError, TypeError):
                problems.append(f"{path}: parameters/semantic/metric {semantic['metric']!r} is not a scipy distance")
    return problems


def load_features(path: Path) -> np.ndarray:
    """A feature file as the benchmark loads it: ``np.load`` (.npy) or ``np.loadtxt`` (.txt), warnings as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty .txt only warns in numpy; the benchmark refuses it
        return np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path)


def check_features(root: str | Path) -> tuple[list[str], dict[str, set[str]]]:
    """Problems of ``root/phonetic/``, and the file names (without suffix) found in each subset."""
    phonetic = Path(root) / PHONETIC
    if not phonetic.is_dir():
        return [f"{phonetic}: missing (features go in phonetic/<subset>/)"], {}
    problems: list[str] = []
    names: dict[str, set[str]] = {}
    dims: tuple[int, Path] | None = None
    for entry in sorted(phonetic.iterdir()):
        if entry.name not in SUBSETS or not entry.is_dir():
            problems.append(f"{entry}: not a subset folder ({', '.join(SUBSETS)})")
            continue
        names[entry.name] = set()
        for path in sorted(p for p in entry.rglob("*") if p.is_file()):
            if path.suffix not in FEATURE_SUFFIXES:
                problems.append(f"{path}: not a feature file (.txt or .npy)")
                continue
            names[entry.name].add(path.relative_to(entry).with_suffix("").as_posix())
            try:
                array = load_features(path)
            except (OSError, ValueError, UserWarning) as e:
                problems.append(f"{path}: not a numpy array ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
                continue
            if array.dtype != np.float64:
                problems.append(f"{path}: dtype {array.dtype}, the validator wants float64")
            elif array.ndim != 2:
                problems.append(f"{path}: {array.ndim}-D array {array.shape}, the validator wants (frames, dims)")
            elif not np.isfinite(array).all():
                problems.append(f"{path}: holds NaN or infinite values")
            elif dims is None:
                dims = (array.shape[1], path)
            elif array.shape[1] != dims[0]:
                problems.append(f"{path}: {array.shape[1]} dims, but {dims[1]} has {dims[0]} (all files must agree)")
    if not names:
        problems.append(f"{phonetic}: no subset folder ({', '.join(SUBSETS)})")
    return problems, names


def check_submission(root: str | Path, dataset: str | Path | None = None) -> list[str]:
    """Every problem the ZeroSpeech validators would find in a phonetic submission; [] when it passes.

    Args:
        root: the submission folder (``meta.yaml`` and ``phonetic/``).
        dataset: the ZeroSpeech 2021 dataset folder (holding ``phonetic/<subset>/*.wav``), to check
            that each input has its feature file; None skips that check.
    Returns:
        One line per problem, each naming the file.
    """
    root = Path(root)
    problems = check_meta(root)
    feature_problems, names = check_features(root)
    problems += feature_problems
    for set_name, pair in SETS.items():
        present = [s for s in pair if s in names]
        if present and len(present) < len(pair):
            missing = next(s for s in pair if s not in names)
            problems.append(f"{root / PHONETIC / missing}: missing; the {set_name} set needs {' and '.join(pair)}")
    if dataset is not None:
        for subset, given in names.items():
            folder = Path(dataset) / PHONETIC / subset
            expected = {p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.wav")}
            if not expected:
                problems.append(f"{folder}: no .wav inputs found for subset {subset}")
                continue
            for name in sorted(expected - given)[:5]:
                problems.append(f"{root / PHONETIC / subset / name}.txt: missing (input {folder / name}.wav)")
            for name in sorted(given - expected)[:5]:
                problems.append(f"{root / PHONETIC / subset / name}: extra file (no such input in {folder})")
    return problems


def validate_submission(root: str | Path, dataset: str | Path | None = None) -> None:
    """Raise TokenFormatError with the first problem ``check_submission`` finds (and how many more)."""
    problems = check_submission(root, dataset)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise TokenFormatError(f"{problems[0]}{more}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print("usage: python -m audio_vqvae.inference.zerospeech SUBMISSION [DATASET]", file=sys.stderr)
        return 2
    problems = check_submission(*argv)
    for line in problems:
        print(line)
    print("invalid submission" if problems else "valid submission", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
