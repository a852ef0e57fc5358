"""Token formats: de-duplication, utterance ids, and round trips of every format (ids with dots and spaces)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audio_vqvae.inference.tokens import (
    BARE_DURATIONS,
    BARE_UNITS,
    CODES_DIR,
    DURATIONS,
    JSONL,
    METADATA,
    TSV_DURATIONS,
    TSV_UNITS,
    UNITS,
    VECTORS_DIR,
    TokenFormatError,
    Tokens,
    TokenWriter,
    check_id,
    codes_from_vectors,
    deduplicate,
    expand,
    id_from_path,
    load_npy,
    read_bare,
    read_jsonl,
    read_npy_dir,
    read_tokens,
    read_tsv,
    read_units,
    read_units_with_durations,
    read_vectors,
)
from audio_vqvae.inference.tokens import IDS as IDS_FILE

IDS = ["a.b", "utt 1", "spk0 x.y.final", "plain"]


def runs(n: int, seed: int) -> torch.Tensor:
    """(n,) codes with runs of random lengths, as a slow encoder output looks."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 8, (n,), generator=gen)
    lengths = torch.randint(1, 5, (n,), generator=gen)
    return torch.repeat_interleave(values, lengths)[:n]


def test_dedup_and_expand_are_inverses():
    cases = [runs(200, s) for s in range(5)] + [torch.tensor([3]), torch.tensor([5, 5, 5]), torch.tensor([1, 2, 1, 2])]
    for codes in cases:
        units, durations = deduplicate(codes)
        assert torch.equal(expand(units, durations), codes)
        assert (units[1:] != units[:-1]).all() and (durations >= 1).all() and durations.sum() == codes.numel()
        again = deduplicate(expand(units, durations))
        assert torch.equal(again[0], units) and torch.equal(again[1], durations)
    with pytest.raises(TokenFormatError, match="durations must be >= 1"):
        expand(torch.tensor([1, 2]), torch.tensor([1, 0]))


def test_ids_come_from_file_names_and_bad_ids_are_named():
    assert id_from_path("/data/a.b c.wav") == "a.b c"
    assert id_from_path("x.flac") == "x" and id_from_path("noext") == "noext"
    for uid in ["a.b", "utt 1", "é ü"]:
        assert check_id(uid) == uid
    assert check_id("spk1/ch 2/a.b") == "spk1/ch 2/a.b"  # relative paths of folder inputs
    assert id_from_path("/data/spk1/ch2/a.b c.wav", "/data") == "spk1/ch2/a.b c"
    bad_ids = ["a|b", "a\\b", "a\nb", "tab\there", " lead", "trail ", "", ".."]
    for bad in bad_ids + ["/abs", "a//b", "a/", "a/../b", "./a", "a/ b", "a /b"]:
        with pytest.raises(TokenFormatError) as e:
            check_id(bad)
        assert repr(bad) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("dedup", [False, True])
def test_every_format_round_trips_the_same_integers(tmp_path, dedup):
    K = 512
    codebook = torch.randn(K, 16)
    tokens = []
    for i, uid in enumerate(IDS):
        codes = runs(50 + 37 * i, i) * 60 + i  # up to 481: needs more than 8 bits
        tokens.append(Tokens(uid, codes, codebook[codes]))
    with TokenWriter(tmp_path, ["codes", "units", "jsonl", "vectors"], dedup, K) as writer:
        for t in tokens:
            writer.add(t)
        writer.close({"codebook_size": K})
    expected = [(t.id, t.codes) for t in tokens]

    def same(rows):
        assert [r[0] for r in rows] == [e[0] for e in expected]
        for (_, got), (_, want) in zip(rows, expected):
            assert got.dtype == torch.long and torch.equal(got, want)

    if dedup:
        same(read_units_with_durations(tmp_path / UNITS, tmp_path / DURATIONS))
        assert len(read_units(tmp_path / UNITS)[0][1]) < tokens[0].codes.numel()  # really de-duplicated
    else:
        same(read_units(tmp_path / UNITS))
        assert not (tmp_path / DURATIONS).exists()
    same(read_tokens(tmp_path / UNITS))  # durations found through tokens.json when de-duplicated
    same(read_jsonl(tmp_path / JSONL))
    same(sorted(read_npy_dir(tmp_path / CODES_DIR), key=lambda r: IDS.index(r[0])))
    assert np.load(tmp_path / CODES_DIR / "utt 1.npy").dtype == np.int16
    vectors = [(t.id, read_vectors(tmp_path / VECTORS_DIR / f"{t.id}.txt")) for t in tokens]
    for (_, v), t in zip(vectors, tokens):
        assert torch.equal(v, t.latents)  # 9 significant digits hold float32 exactly
    same([(uid, codes_from_vectors(v, codebook)) for uid, v in vectors])
    meta = json.loads((tmp_path / METADATA).read_text())
    assert meta["deduplicated"] == dedup and meta["utterances"] == len(IDS) and meta["codebook_size"] == K
    assert not list(tmp_path.glob(".*partial"))


def test_malformed_files_are_named_with_their_line(tmp_path):
    bad = tmp_path / "units.txt"
    bad.write_text("ok|1 2 3\nno separator here\n")
    with pytest.raises(TokenFormatError, match=r"units.txt:2: expected 'id\|u1 u2 \.\.\.'"):
        read_units(bad)
    bad.write_text("a|1 x 3\n")
    with pytest.raises(TokenFormatError, match="units.txt:1: units must be integers"):
        read_units(bad)
    bad.write_text("a|1\na|2\n")
    with pytest.raises(TokenFormatError, match="duplicate utterance id 'a'"):
        read_units(bad)
    durations = tmp_path / "durations.txt"
    bad.write_text("a|1 2\n")
    durations.write_text("a|1\n")
    with pytest.raises(TokenFormatError, match="durations.txt: utterance 'a': 2 units but 1 durations"):
        read_units_with_durations(bad, durations)


def test_a_writer_that_fails_leaves_no_partial_text_files(tmp_path):
    with pytest.raises(TokenFormatError, match="'a|b'"):
        with TokenWriter(tmp_path, ["units", "jsonl"], True, 32) as writer:
            writer.add(Tokens("fine", torch.tensor([1, 1, 2])))
            writer.add(Tokens("a|b", torch.tensor([1])))
    assert list(tmp_path.iterdir()) == []


def test_non_integer_units_are_refused_naming_the_file_and_position(tmp_path):
    jsonl = tmp_path / "units.jsonl"
    for line, message in [
        ('{"id": "a", "units": [1, 1.5, 2]}', "units[1] is 1.5, not an integer"),
        ('{"id": "a", "units": [1, 2.0]}', "units[1] is 2.0, not an integer"),
        ('{"id": "a", "units": [true]}', "units[0] is true, not an integer"),
        ('{"id": "a", "units": [1, 2], "durations": [1, 0.5]}', "durations[1] is 0.5, not an integer"),
    ]:
        jsonl.write_text('{"id": "ok", "units": [3]}\n' + line + "\n")
        with pytest.raises(TokenFormatError) as e:
            read_jsonl(jsonl)
        assert str(e.value) == f"{jsonl}:2: {message}"
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "a.npy", np.array([1, 2], dtype=np.int16))
    np.save(npy / "b.npy", np.array([1.0, 2.0, 2.5], dtype=np.float32))
    message = r"b.npy: units must be integers, got a float32 array; position 2 is 2.5$"
    with pytest.raises(TokenFormatError, match=message):
        read_tokens(npy)
    np.save(npy / "b.npy", np.array([1.0, 2.0]))
    with pytest.raises(TokenFormatError, match=r"b.npy: units must be integers, got a float64 array$"):
        load_npy(npy / "b.npy")
    (npy / "b.npy").write_bytes(b"not numpy")
    with pytest.raises(TokenFormatError, match=r"b.npy: not a .npy array"):
        load_npy(npy / "b.npy")
    units = tmp_path / "units.txt"
    units.write_text("a|1 1.5 2\n")
    with pytest.raises(TokenFormatError, match=r"units.txt:1: units must be integers .*; position 1 is '1.5'"):
        read_units(units)


def test_huge_integers_and_bytes_that_are_not_utf8_are_one_line_errors_naming_the_file(tmp_path):
    huge = "99999999999999999999"  # "Overflow when unpacking long", no file named, before
    units, jsonl = tmp_path / "units.txt", tmp_path / "units.jsonl"
    units.write_text(f"ok|1\na|1 {huge}\n")
    with pytest.raises(TokenFormatError) as e:
        read_units(units)
    assert str(e.value) == f"{units}:2: unit {huge} at position 1 is out of range (64-bit integers)"
    for key, line in [
        ("units", f'{{"id": "a", "units": [{huge}]}}'),
        ("durations", f'{{"id": "a", "units": [1], "durations": [-{huge}]}}'),
    ]:
        jsonl.write_text('{"id": "ok", "units": [3]}\n' + line + "\n")
        with pytest.raises(TokenFormatError) as e:
            read_jsonl(jsonl)
        sign = "-" if key == "durations" else ""
        assert str(e.value) == f"{jsonl}:2: {key}[0] is {sign}{huge}, out of range (64-bit integers)"
    units.write_text(f"a|1 {2**63 - 1}\n")
    assert read_units(units)[0][1].tolist() == [1, 2**63 - 1]
    # invalid UTF-8: a bare UnicodeDecodeError, no file named, before
    for path, good in ((units, b"ok|1\n"), (jsonl, b'{"id": "ok", "units": [3]}\n')):
        path.write_bytes(good + b"a\xff|1\n")
        with pytest.raises(TokenFormatError) as e:
            read_tokens(path)
        assert str(e.value) == f"{path}:2: not UTF-8 text (byte 0xff)", e.value
        assert "\n" not in str(e.value)


def test_two_writers_into_one_folder_keep_their_own_temporaries(tmp_path):
    """Temporary names are unique: interleaved writers never tear each other's files (item 1)."""
    first = TokenWriter(tmp_path, ["units", "jsonl", "codes"], False, 32)
    second = TokenWriter(tmp_path, ["units", "jsonl", "codes"], False, 32)
    for i, uid in enumerate(IDS):
        first.add(Tokens(uid, torch.tensor([1, 2, i])))
        second.add(Tokens(uid, torch.tensor([5, i])))
    first.close({"run": 1})
    second.close({"run": 2})
    assert [(uid, c.tolist()) for uid, c in read_units(tmp_path / UNITS)] == [(u, [5, i]) for i, u in enumerate(IDS)]
    assert [c.tolist() for _, c in read_jsonl(tmp_path / JSONL)] == [[5, i] for i in range(len(IDS))]
    assert json.loads((tmp_path / METADATA).read_text())["run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([JSONL, METADATA, CODES_DIR, UNITS])


def test_a_writer_that_fails_leaves_the_folder_as_it_was(tmp_path):
    """Nothing is moved into place before close: a failed rewrite keeps the old run whole (item 2)."""
    with TokenWriter(tmp_path, ["units", "codes", "vectors"], False, 32) as writer:
        for uid in IDS:
            writer.add(Tokens(uid, torch.tensor([1, 2, 3]), torch.zeros(3, 2)))
        writer.close({"run": 1})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="NaN found"):
        with TokenWriter(tmp_path, ["units", "codes", "vectors"], False, 32) as writer:
            writer.add(Tokens(IDS[0], torch.tensor([7, 7]), torch.ones(2, 2)))
            raise RuntimeError("NaN found in a later file")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def load_code(path) -> list[list[int]]:
    """What fairseq's speech-to-speech ``load_code`` (and a unit LM's reader) does with a bare file."""
    with open(path, encoding="utf-8") as f:
        return [list(map(int, line.strip().split())) for line in f]


@pytest.mark.parametrize("dedup", [False, True])
def test_bare_and_tsv_files_read_back_as_downstream_tools_read_them(tmp_path, dedup):
    tokens = [Tokens(uid, runs(40 + 9 * i, i)) for i, uid in enumerate(IDS + ["spk1/ch 2/x.y"])]
    with TokenWriter(tmp_path, ["bare", "tsv", "units"], dedup, 32) as writer:
        for t in tokens:
            writer.add(t)
        writer.close({"codebook_size": 32})
    stored = [deduplicate(t.codes) if dedup else (t.codes, None) for t in tokens]
    ids = (tmp_path / IDS_FILE).read_text(encoding="utf-8").splitlines()
    assert ids == [t.id for t in tokens]
    assert load_code(tmp_path / BARE_UNITS) == [u.tolist() for u, _ in stored]  # bare: nothing but units
    assert len(load_code(tmp_path / BARE_UNITS)) == len(ids)
    for line, t, (u, _) in zip((tmp_path / TSV_UNITS).read_text(encoding="utf-8").splitlines(), tokens, stored):
        name, units = line.split("\t")  # textlesslib --preserve_name: name<TAB>units
        assert name == t.id and [int(v) for v in units.split(" ")] == u.tolist()
    if dedup:
        assert load_code(tmp_path / BARE_DURATIONS) == [d.tolist() for _, d in stored]
        assert [name for name, _ in read_tsv(tmp_path / TSV_DURATIONS)] == ids
    else:
        assert not (tmp_path / BARE_DURATIONS).exists() and not (tmp_path / TSV_DURATIONS).exists()
    for source in (tmp_path / BARE_UNITS, tmp_path / TSV_UNITS, tmp_path / UNITS):
        rows = read_tokens(source)  # durations found beside, through tokens.json, when de-duplicated
        assert [(uid, c.tolist()) for uid, c in rows] == [(t.id, t.codes.tolist()) for t in tokens], source
    assert [(u, c.tolist()) for u, c in read_bare(tmp_path / BARE_UNITS)] == [
        (t.id, u.tolist()) for t, (u, _) in zip(tokens, stored)
    ]


def test_malformed_bare_and_tsv_files_are_named_with_their_line(tmp_path):
    bare, ids, tsv = tmp_path / BARE_UNITS, tmp_path / IDS_FILE, tmp_path / TSV_UNITS
    bare.write_text("1 2 3\n4 5\n")
    ids.write_text("a\n")
    with pytest.raises(TokenFormatError, match=rf"units.bare.txt: 2 lines but 1 ids in {ids}"):
        read_bare(bare)
    ids.write_text("a\nb\n")
    bare.write_text("1 2 3\n4 x\n")
    with pytest.raises(TokenFormatError, match=r"units.bare.txt:2: units must be integers .*position 1 is 'x'"):
        read_bare(bare)
    ids.write_text("a\na\n")
    with pytest.raises(TokenFormatError, match="ids.txt:2: duplicate utterance id 'a'"):
        read_bare(bare)
    tsv.write_text("a\t1 2\nb|3\n")
    with pytest.raises(TokenFormatError, match=r"units.tsv:2: expected 'id<TAB>u1 u2 \.\.\.'"):
        read_tsv(tsv)


def test_the_old_npy_format_name_says_where_codes_went(tmp_path):
    with pytest.raises(TokenFormatError, match=r"'npy': .*now 'codes' \(codes/<id>.npy\).*'zerospeech'"):
        TokenWriter(tmp_path, ["units", "npy"], False, 32)
    assert list(tmp_path.iterdir()) == []


def test_ids_with_relative_paths_write_per_file_outputs_in_subfolders(tmp_path):
    tokens = [Tokens("spk1/a", torch.tensor([1, 2])), Tokens("spk2/x y/b.c", torch.tensor([3]))]
    tokens.append(Tokens("top", torch.tensor([4])))
    with TokenWriter(tmp_path, ["codes", "vectors"], False, 32) as writer:
        for t in tokens:
            writer.add(Tokens(t.id, t.codes, torch.zeros(t.codes.numel(), 2)))
        writer.close({})
    assert (tmp_path / CODES_DIR / "spk2" / "x y" / "b.c.npy").is_file()
    assert (tmp_path / VECTORS_DIR / "spk1" / "a.txt").is_file()
    rows = read_npy_dir(tmp_path / CODES_DIR)
    assert [(u, c.tolist()) for u, c in rows] == sorted((t.id, t.codes.tolist()) for t in tokens)
