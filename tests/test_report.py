"""The demo report: markdown and HTML whose links all resolve after the folder is moved, playable audio,
escaped text."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import soundfile as sf

from audio_vqvae.data.manifest import Utterance, write_manifest, write_speakers
from audio_vqvae.evaluation.report import write_pairs, write_report
from audio_vqvae.inference.jobs import read_pairs

SENTENCES = ("the cat sat", "a dog ran")
UNITS = {
    "model": {"phone_accuracy": 0.5, "pnmi": 0.25, "abx_within": None, "codes_used": 7},
    "baseline": {"phone_accuracy": 0.4, "pnmi": 0.2, "abx_within": 0.3, "codes_used": 8},
    "n_eval_utterances": 4,
    "codebook_size": 8,
    "abx_context": "any",
}
CONVERSION = {"speaker": {"target_rate": 0.75}, "content": {"mcd_target": 7.5}, "n_pairs": 4}


def tone(path: Path, seconds: float = 0.3, f0: float = 200.0) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 16000, subtype="PCM_16")
    return path


def experiment(exp: Path) -> dict:
    """A tiny experiment folder: a corpus where two speakers read the same sentences, a pairs file and the
    converted files but one (a failed conversion), metrics JSON, TensorBoard scalars with a '<tag>'."""
    data = exp / "data"
    rows = []
    for s, speaker in enumerate(("a", "b")):
        for k, text in enumerate(SENTENCES):
            path = tone(data / "wav" / speaker / f"{speaker}_{k}.wav", f0=150.0 + 50 * s + 20 * k)
            rows.append(Utterance(f"{speaker}_{k}", str(path.relative_to(data)), speaker, 0.3, 16000, 4800, text))
    write_manifest(data / "test.jsonl", rows)
    write_speakers(data / "speakers.txt", ["a", "b"])
    write_pairs(data / "test.jsonl", exp / "pairs.txt", None, n_sources=4, n_targets=1)
    jobs = read_pairs(exp / "pairs.txt", exp / "converted")
    for job in jobs[1:]:
        tone(job.output, f0=300.0)
    (exp / "units.json").write_text(json.dumps(UNITS))
    (exp / "conversion.json").write_text(json.dumps(CONVERSION))
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(exp / "model" / "tensorboard") as writer:
        for step in (1, 2, 3):
            writer.add_scalar("loss/reconstruction", 5.0 / step, step)
    return {
        "data": data,
        "tensorboard": exp / "model" / "tensorboard",
        "units_json": exp / "units.json",
        "conversion_json": exp / "conversion.json",
        "converted": exp / "converted",
        "pairs": exp / "pairs.txt",
    }


class Elements(HTMLParser):
    """Every start tag with its attributes, in order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_links_resolve_after_the_folder_is_moved_and_the_html_plays_each_conversion(tmp_path):
    exp = tmp_path / "exp"
    inputs = experiment(exp)
    title = "demo <b>&</b> report"
    write_report(exp / "report.md", title=title, synthetic=True, **inputs)
    converted = sorted(p.name for p in (exp / "converted").glob("*.wav"))
    assert len(converted) == 3 and len(read_pairs(exp / "pairs.txt", exp / "converted")) == 4

    moved = tmp_path / "elsewhere" / "renamed exp"  # a space: links must be encoded
    shutil.move(exp, moved)
    md = (moved / "report.md").read_text(encoding="utf-8")
    page = (moved / "report.html").read_text(encoding="utf-8")
    for text in (md, page):
        assert str(exp) not in text  # nothing points to where the folder was

    md_links = [unquote(m) for m in re.findall(r"\]\(([^)\s]+)\)", md)]
    assert md_links and all((moved / link).is_file() for link in md_links), md_links
    assert {Path(link).name for link in md_links} >= {*converted, "training.png", "spectrograms.png"}

    parser = Elements()
    parser.feed(page)
    parser.close()
    refs = [unquote(a.get("src") or a.get("href")) for tag, a in parser.tags if tag in ("audio", "img", "a")]
    assert refs and all((moved / ref).is_file() for ref in refs), refs
    audio = [(moved / unquote(a["src"])).resolve() for tag, a in parser.tags if tag == "audio"]
    assert all("controls" in a for tag, a in parser.tags if tag == "audio")
    played = sorted(p.name for p in audio if p.parent == (moved / "converted").resolve())
    assert played == converted  # one player per converted file; none for the missing one
    assert any(p.parent.name in ("a", "b") for p in audio)  # sources and the targets' own readings too
    assert {Path(unquote(a["src"])).name for tag, a in parser.tags if tag == "img"} >= {
        "training.png",
        "spectrograms.png",
    }
    assert "<b>&</b>" not in page and "demo &lt;b&gt;&amp;&lt;/b&gt; report" in page  # text is escaped
    assert page.count("<table>") == 3 and "MFCC k-means baseline" in page and "(missing)" in page
